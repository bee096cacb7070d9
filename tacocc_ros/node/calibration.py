"""The node's calibration file; the reader and writer live in `tacocc_core.rig.calibration_file` (no ROS)."""

from tacocc_core.rig.calibration_file import (
    CalibrationError,
    CameraCalibration,
    RigCalibration,
    calibration_from_dict,
    calibration_to_dict,
    load_calibration,
    save_calibration,
)

__all__ = [
    "CalibrationError",
    "CameraCalibration",
    "RigCalibration",
    "calibration_from_dict",
    "calibration_to_dict",
    "load_calibration",
    "save_calibration",
]

"""The training node: fine-tune a checkpoint on recorded bags, progress on /training_node/progress.

    ros2 launch tacocc_ros train.launch.py bags:="['/data/bags/scene-0061']" out_dir:=runs/online \
        [model_config:=tiny] [train_config:=FILE] [checkpoint:=FILE] [checkpoint_interval:=100] \
        [device:=cpu] [label_fraction:=1.0] [mode:=auto] [resume:=false] [calibration:=FILE] [autostart:=true]

The topic names of the bags are the occupancy node's parameters (`lidar_topic`, `cameras.<NAME>.image_topic`,
...): for a bag with other names, run the node with the params file the occupancy node takes
(`ros2 run tacocc_ros training_node --ros-args --params-file FILE`).

Point a running occupancy node at `<out_dir>/latest.pt` (`checkpoint` parameter, or its
`~/reload_checkpoint` service) to use the fine-tuned weights without a restart.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = {
    "bags": ("", "rosbag2 folders, a YAML list"),
    "model_config": ("tiny", "model preset name or YAML path"),
    "checkpoint": ("", "initial weights ('' = random)"),
    "train_config": ("", "TrainConfig YAML ('' = the defaults)"),
    "out_dir": ("", "run folder; latest.pt is written here"),
    "checkpoint_interval": ("0", "steps between checkpoints (0 = the train config's)"),
    "steps": ("0", "optimiser steps in total (0 = the train config's)"),
    "device": ("cpu", "auto, cpu, cuda or cuda:N"),
    "label_fraction": ("1.0", "fraction of the labels kept"),
    "mode": ("auto", "auto, supervised or self_supervised"),
    "resume": ("false", "continue from out_dir/latest.pt"),
    "calibration": ("", "calibration YAML for every bag ('' = the bag's calibration.yaml, else its /tf_static)"),
    "autostart": ("true", "configure and train at startup, exit when done; false waits for a lifecycle manager"),
}
TYPES = {
    "checkpoint_interval": int,
    "steps": int,
    "label_fraction": float,
    "resume": bool,
    "autostart": bool,
    "bags": list,
}


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=d, description=text) for name, (d, text) in ARGUMENTS.items()]
    params = {
        name: ParameterValue(LaunchConfiguration(name), value_type=TYPES[name])
        if name in TYPES and name != "bags"
        else LaunchConfiguration(name)
        for name in ARGUMENTS
    }
    params["bags"] = ParameterValue(LaunchConfiguration("bags"), value_type=list[str])
    return LaunchDescription(
        [
            *declared,
            Node(
                package="tacocc_ros",
                executable="training_node",
                name="training_node",
                output="screen",
                parameters=[params],
            ),
        ]
    )

"""rosbag2 files without ROS: nuScenes -> bag conversion, bag reading and checking, the calibration file.

Everything here uses the `rosbags` library (its own message classes and CDR serialiser), never rclpy, so
that bags are written and read on machines with no ROS install.
"""

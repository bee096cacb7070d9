"""rosbag2 files without ROS: nuScenes -> bag conversion, reading any recorded bag, ego motion from /tf.

Bags are read under the nodes' topic names (`topics.SensorTopics`); the calibration file beside a bag is
the rig file of `tacocc_core/rig/calibration_file.py`. Everything here uses the `rosbags` library (its own
message classes and CDR serialiser), never rclpy, so that bags are written and read on machines with no
ROS install.
"""

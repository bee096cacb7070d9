"""The sensor rig: the node's calibration file, TF trees as pure functions, rig sources and checks (no ROS)."""

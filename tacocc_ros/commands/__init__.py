"""`tacocc` subcommands that run ROS 2 (rclpy imported inside `run` only)."""

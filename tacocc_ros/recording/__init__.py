"""`tacocc record`: rosbag2 recording over rclpy and rosbags, without a ROS install."""

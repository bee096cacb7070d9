"""rosbag2 files through rclpy messages: playing a bag into DDS, and the node's frames read straight from a bag."""

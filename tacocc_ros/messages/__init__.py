"""ROS messages <-> numpy: point clouds, images, time stamps. Used by the nodes, the bag tools and the tests."""

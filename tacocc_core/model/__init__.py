"""The TACOcc network: image branch, LiDAR branch, adaptive fuser (paper Sec. III-A)."""

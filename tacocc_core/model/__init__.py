"""The TACOcc network, one building block per module."""

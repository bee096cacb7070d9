"""TACOcc in plain PyTorch and numpy: model, data, training, evaluation. Imports nothing from ROS."""

__version__ = "0.1.0"

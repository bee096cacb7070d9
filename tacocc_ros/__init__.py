"""Thin ROS 2 nodes around `tacocc_core`: messages in, numpy out, the model, messages out."""

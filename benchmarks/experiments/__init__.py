"""Experiment drivers: train and score variants over seeds, and the GPU checks; they print tables of results."""

"""Building blocks of the training loop, one concept per file.

Schedule, run config, resumable state, NaN guard, label-efficient selection and pseudo-labels,
distributed helpers, progress logging.
"""

"""The error of a checkpoint that cannot be used, importable without torch.

The parent of an inference process raises it when the child that loads the file reports one.
"""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, has the wrong format, or does not fit the requested config."""

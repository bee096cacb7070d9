"""Skip optimiser steps whose loss (or gradient norm) is not finite; stop after too many in a row.

One non-finite loss in a long run (a degenerate batch, a bf16 overflow) should cost one step, not the run;
a run that keeps producing them has diverged and should stop with a message rather than burn GPU hours.
"""

from __future__ import annotations

import math

import torch


class NonFiniteLossError(RuntimeError):
    """Raised when more than the allowed number of consecutive steps had a non-finite loss."""


class NanGuard:
    """Counts non-finite steps.

    Usage per step: `if guard.check(loss, step): loss.backward(); ...; optimizer.step()` - a False return
    means skip the step (zero the gradients, do not step the optimiser or the scheduler).

    Args:
        max_in_a_row: raise `NonFiniteLossError` when this many consecutive checks fail (>= 1).
    """

    def __init__(self, max_in_a_row: int) -> None:
        if max_in_a_row < 1:
            raise ValueError(f"NanGuard: max_in_a_row must be >= 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.skipped = 0

    def check(self, value: torch.Tensor | float, step: int, what: str = "loss") -> bool:
        """True when `value` is finite (the step may go on); False (counted) when it is NaN or inf.

        Args:
            value: a scalar tensor or number (the total loss, or the gradient norm after clipping).
            step: the current step, for the message.
            what: name of the value, for the message.
        """
        # Host-device synchronisation: reading a CUDA scalar waits for the step's kernels.
        number = float(value.detach().float().item()) if isinstance(value, torch.Tensor) else float(value)
        if math.isfinite(number):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped += 1
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"{what} was not finite ({number}) for {self.in_a_row} steps in a row, the last at step {step} "
                f"({self.skipped} skipped in total; limit max_nan_in_a_row={self.max_in_a_row}): the run has "
                "diverged - lower the learning rate or check the data"
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"in_a_row": self.in_a_row, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.in_a_row = int(state["in_a_row"])
        self.skipped = int(state["skipped"])

"""What produced a demo report: the inputs named by the user and the facts of the machine it ran on."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    """CPU count, platform, Python and the versions of the libraries that shape the result."""
    return {
        "cpu_count": str(os.cpu_count()),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "spconv": _version("spconv") if _version("spconv") != "not installed" else _version("spconv-cu126"),
        "rclpy": _version("ros-rclpy"),
    }


@dataclass(frozen=True)
class Provenance:
    """Inputs of the run (as given) and the machine facts (collected when constructed).

    Args:
        checkpoint: the checkpoint file the node loaded.
        model_config: the model preset name or YAML path.
        bag: the replayed bag.
        rate: replay rate (1.0 = recorded timing).
        command: the command line that produced the report ("" when not from the CLI).
        data: how the replayed data was made (e.g. the generate-scenes options), free-form.
    """

    checkpoint: str
    model_config: str
    bag: str
    rate: float
    command: str = ""
    data: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=machine_facts)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

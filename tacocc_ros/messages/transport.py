"""The DDS setting for large messages on one machine: a Fast DDS profile (32 MiB shm segment, dynamic readers).

Why: see `fastdds_large_messages.xml` beside this file (Fast DDS's default 512 KiB shared memory segment
delays camera images by up to hundreds of milliseconds when six of them are published together, and
rmw_fastrtps' preallocated reader histories keep every slot at the size of the largest sample it held).

`large_message_environment(env)` returns `env` with FASTDDS_DEFAULT_PROFILES_FILE pointing at that
profile and RMW_FASTRTPS_USE_QOS_FROM_XML=1 (so that its reader memory policy applies), unless the
caller chose a profile already (FASTDDS_ or FASTRTPS_DEFAULT_PROFILES_FILE set) or uses another
middleware (RMW_IMPLEMENTATION other than rmw_fastrtps_cpp); TACOCC_FASTDDS_PROFILE=default leaves Fast
DDS's defaults. Fast DDS reads the variables when a process creates its first participant, so they must
be set before `rclpy.init`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

FASTDDS_PROFILE = Path(__file__).resolve().parent / "fastdds_large_messages.xml"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
SWITCH = "TACOCC_FASTDDS_PROFILE"


def large_message_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the project's Fast DDS profile set where nothing else was chosen (see the module docstring)."""
    env = dict(env)
    if env.get(SWITCH, "").strip().lower() == "default":
        return env
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return env
    if any(env.get(name) for name in PROFILE_VARIABLES):
        return env
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    env.setdefault("RMW_FASTRTPS_USE_QOS_FROM_XML", "1")
    return env


def transport_description(env: dict[str, str]) -> str:
    """What the process uses, for the node's ready line."""
    chosen = next((env[name] for name in PROFILE_VARIABLES if env.get(name)), None)
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return f"middleware {env['RMW_IMPLEMENTATION']}"
    if chosen is None:
        return "Fast DDS defaults"
    if Path(chosen).resolve() == FASTDDS_PROFILE:
        return "Fast DDS profile for large messages (32 MiB shared memory segment, dynamic reader memory)"
    return f"Fast DDS profile {chosen}"

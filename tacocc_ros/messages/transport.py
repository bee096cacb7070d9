"""The DDS transport setting for large messages on one machine: a Fast DDS profile with a 32 MiB shm segment.

Why: see `fastdds_large_messages.xml` beside this file (Fast DDS's default 512 KiB shared memory segment
delays camera images by up to hundreds of milliseconds when six of them are published together).

`large_message_environment(env)` returns `env` with FASTDDS_DEFAULT_PROFILES_FILE pointing at that
profile, unless the caller chose a profile already (FASTDDS_ or FASTRTPS_DEFAULT_PROFILES_FILE set) or
uses another middleware (RMW_IMPLEMENTATION other than rmw_fastrtps_cpp); TACOCC_FASTDDS_PROFILE=default
leaves Fast DDS's defaults. Fast DDS reads the variable when a process creates its first participant, so
it must be set before `rclpy.init`.
"""

from __future__ import annotations

from pathlib import Path

FASTDDS_PROFILE = Path(__file__).resolve().parent / "fastdds_large_messages.xml"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
SWITCH = "TACOCC_FASTDDS_PROFILE"


def large_message_environment(env: dict[str, str]) -> dict[str, str]:
    """`env` with the project's Fast DDS profile set where nothing else was chosen (see the module docstring)."""
    env = dict(env)
    if env.get(SWITCH, "").strip().lower() == "default":
        return env
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return env
    if any(env.get(name) for name in PROFILE_VARIABLES):
        return env
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    return env


def transport_description(env: dict[str, str]) -> str:
    """What the process uses, for the node's ready line."""
    chosen = next((env[name] for name in PROFILE_VARIABLES if env.get(name)), None)
    if env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return f"middleware {env['RMW_IMPLEMENTATION']}"
    if chosen is None:
        return "Fast DDS defaults"
    if Path(chosen).resolve() == FASTDDS_PROFILE:
        return "Fast DDS profile with a 32 MiB shared memory segment"
    return f"Fast DDS profile {chosen}"

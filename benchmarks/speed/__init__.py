"""Speed benchmarks: how long a part of the system takes on this machine; they print numbers and assert none."""

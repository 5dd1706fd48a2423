"""What the machine (or the container) this process runs in offers."""

from __future__ import annotations

import os
from pathlib import Path

# cgroup v2 and v1 files holding a container's memory limit
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def machine_memory_bytes() -> float:
    """The memory this process may use: the physical memory, or a container's lower limit."""
    memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for limit in _CGROUP_LIMITS:
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, float(text))
    return memory

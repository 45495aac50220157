"""The machine a benchmark ran on, described for the report."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _proc_field(file: str, key: str) -> str | None:
    """The first `key: value` of a /proc file, or None where there is no such file or key."""
    try:
        lines = Path(file).read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == key), None)


def load() -> float:
    """The 1-minute load average (0 where the system has none): other work running beside a benchmark."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def describe() -> dict[str, str]:
    """CPU model, cores, torch threads, memory, OS, Python, torch and GPU, as short strings."""
    import torch

    memory = _proc_field("/proc/meminfo", "MemTotal")  # "24589912 kB"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": f"{cores()} usable of {os.cpu_count()}",
        "torch threads": str(torch.get_num_threads()),
        "memory": f"{int(memory.split()[0]) / 2**20:.1f} GiB" if memory else "unknown",
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "gpu": gpu,
    }

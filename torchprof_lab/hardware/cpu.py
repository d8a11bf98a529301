"""CPU facts that need no extra package: the model name the kernel reports."""

from __future__ import annotations

import platform


def cpu_model_name() -> str:
    """'AMD EPYC 7B13' from /proc/cpuinfo on Linux; platform's words elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

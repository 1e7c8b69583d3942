"""How much RAM a reader may claim before it refuses a file (guards against absurd headers)."""

from __future__ import annotations

import os

DEFAULT_RAM_FRACTION = 0.5


def available_ram_bytes() -> int:
    """Bytes of RAM available to a new allocation: MemAvailable from /proc/meminfo, else free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 8 * 1024**3  # unknown platform: assume a modest 8 GB


def check_fits_in_ram(nbytes: int, what: str, fraction: float = DEFAULT_RAM_FRACTION) -> str | None:
    """None if ``nbytes`` fits in ``fraction`` of available RAM, else a one-line reason (sizes in GB)."""
    avail = available_ram_bytes()
    if nbytes <= fraction * avail:
        return None
    return (
        f"{what} claims {nbytes / 1e9:.1f} GB, more than {fraction:.0%} of the "
        f"{avail / 1e9:.1f} GB of memory available"
    )

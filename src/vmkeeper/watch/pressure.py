"""Memory pressure, the June incident's cause, read before the OOM killer acts: the kernel's
PSI (/proc/pressure/memory, "some avg10": the share of the last 10 s some task stalled on
memory) where it has it, else MemAvailable as a share of MemTotal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper.settings import WatchSettings

PSI = Path("/proc/pressure/memory")
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class Pressure:
    source: str  # "psi" | "meminfo"
    value_pct: float  # PSI some avg10, or MemAvailable %
    high: bool
    line: str


def _psi(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                key, _eq, value = field.partition("=")
                if key == "avg10":
                    return float(value)
    return None


def _available_pct(text: str) -> float | None:
    values: dict[str, float] = {}
    for line in text.splitlines():
        key, _colon, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            values[key] = float(rest.split()[0])
    if values.get("MemTotal"):
        return 100.0 * values.get("MemAvailable", 0.0) / values["MemTotal"]
    return None


def read_pressure(rules: WatchSettings, psi: Path = PSI, meminfo: Path = MEMINFO) -> Pressure:
    try:
        stalled = _psi(psi.read_text())
    except (OSError, ValueError):
        stalled = None
    if stalled is not None:
        high = stalled >= rules.memory_pressure_warn_pct
        return Pressure("psi", stalled, high, f"memory pressure {stalled:.1f}% (PSI some avg10)")
    try:
        available = _available_pct(meminfo.read_text())
    except (OSError, ValueError):
        available = None
    if available is None:
        return Pressure("meminfo", 100.0, False, "memory pressure unknown")
    high = available <= rules.memory_available_warn_pct
    return Pressure("meminfo", available, high, f"{available:.1f}% of memory available")

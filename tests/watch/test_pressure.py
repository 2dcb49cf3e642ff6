"""Memory pressure from PSI, else MemAvailable; high above the watch.* thresholds."""

from __future__ import annotations

from pathlib import Path

from vmkeeper.settings import WatchSettings
from vmkeeper.watch.pressure import read_pressure

RULES = WatchSettings(memory_pressure_warn_pct=10, memory_available_warn_pct=10)


def test_psi_some_avg10_above_the_threshold_is_high(tmp_path: Path) -> None:
    psi = tmp_path / "memory"
    psi.write_text("some avg10=42.50 avg60=3.00 avg300=0.50 total=1\n"
                   "full avg10=20.00 avg60=1.00 avg300=0.10 total=1\n")
    found = read_pressure(RULES, psi, tmp_path / "none")
    assert (found.source, found.value_pct, found.high) == ("psi", 42.5, True)
    psi.write_text("some avg10=0.10 avg60=0.00 avg300=0.00 total=1\n")
    assert not read_pressure(RULES, psi, tmp_path / "none").high


def test_without_psi_memavailable_decides(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000000 kB\nMemFree: 10 kB\nMemAvailable:   50000 kB\n")
    found = read_pressure(RULES, tmp_path / "no-psi", meminfo)
    assert (found.source, found.value_pct, found.high) == ("meminfo", 5.0, True)


def test_nothing_readable_is_not_high(tmp_path: Path) -> None:
    assert not read_pressure(RULES, tmp_path / "a", tmp_path / "b").high

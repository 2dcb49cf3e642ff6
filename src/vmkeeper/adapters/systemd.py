"""systemd: argv builders (pure), the `systemctl show` parser (pure), and a thin client.

The runbook's PM2 runs under the unit `pm2-ubuntu`; recovery is `systemctl reset-failed` then
`systemctl restart`. Where systemd is not PID 1 (containers, these test machines) there is no
unit to ask, and callers fall back to the PM2 daemon itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from vmkeeper import proc

# What `show` is asked for: enough to tell "active", "failed with oom-kill", "start-limit-hit".
SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "Result", "MainPID", "NRestarts",
    "ExecMainStatus", "ExecMainCode", "ActiveEnterTimestamp", "InactiveEnterTimestamp",
    "Type", "Restart",
)


def unit_name(unit: str) -> str:
    return unit if "." in unit else f"{unit}.service"


def show_argv(systemctl: str, unit: str) -> list[str]:
    argv = [systemctl, "show", unit_name(unit), "--no-pager"]
    for prop in SHOW_PROPERTIES:
        argv += ["-p", prop]
    return argv


def reset_failed_argv(systemctl: str, unit: str) -> list[str]:
    return [systemctl, "reset-failed", unit_name(unit)]


def restart_argv(systemctl: str, unit: str) -> list[str]:
    return [systemctl, "restart", unit_name(unit)]


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show` output as a mapping; the first value wins if a key repeats.

    Values may contain '=' (ExecStart={ path=… }), so each line splits at its first '='.
    Blank lines separate units when several are shown; only the first unit is read.
    """
    values: dict[str, str] = {}
    seen_any = False
    for line in text.splitlines():
        if not line.strip():
            if seen_any:
                break
            continue
        key, eq, value = line.partition("=")
        if not eq:
            continue
        seen_any = True
        values.setdefault(key.strip(), value.strip())
    return values


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "", "[not set]") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class UnitState:
    """What `systemctl show` says of one unit."""

    unit: str
    load_state: str | None
    active_state: str | None
    sub_state: str | None
    result: str | None
    main_pid: int | None
    restarts: int | None
    exec_main_status: int | None
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.active_state == "active"

    @property
    def failed(self) -> bool:
        return self.active_state == "failed" or self.result not in (None, "", "success")

    @property
    def oom_killed(self) -> bool:
        return self.result == "oom-kill"

    @property
    def start_limit_hit(self) -> bool:
        return self.result == "start-limit-hit"

    @property
    def exists(self) -> bool:
        return self.load_state not in ("not-found", None)


def unit_state(unit: str, text: str) -> UnitState:
    values = parse_show(text)
    return UnitState(
        unit=values.get("Id") or unit_name(unit),
        load_state=values.get("LoadState"),
        active_state=values.get("ActiveState"),
        sub_state=values.get("SubState"),
        result=values.get("Result"),
        main_pid=_as_int(values.get("MainPID")) or None,
        restarts=_as_int(values.get("NRestarts")),
        exec_main_status=_as_int(values.get("ExecMainStatus")),
        properties=values,
    )


def systemd_is_pid1(proc_root: Path = Path("/proc"), run_dir: Path = Path("/run/systemd/system")
                    ) -> bool:
    """True when systemd is the init system (sd_booted(3) checks /run/systemd/system)."""
    if run_dir.is_dir():
        return True
    try:
        return (proc_root / "1" / "comm").read_text().strip() == "systemd"
    except OSError:
        return False


@dataclass(frozen=True)
class Systemctl:
    """`systemctl` for one unit. ``bin`` may be a stand-in (tests put one on PATH)."""

    bin: str = "systemctl"
    timeout: float = 15.0
    runner: proc.Runner = proc.run

    def _run(self, argv: Sequence[str], *, check: bool) -> proc.Result:
        return self.runner(list(argv), timeout=self.timeout, check=check)

    def show(self, unit: str) -> UnitState:
        return unit_state(unit, self._run(show_argv(self.bin, unit), check=True).stdout)

    def reset_failed(self, unit: str) -> proc.Result:
        # `reset-failed` on a unit that is not failed exits non-zero on some versions: not an error.
        return self._run(reset_failed_argv(self.bin, unit), check=False)

    def restart(self, unit: str) -> proc.Result:
        return self._run(restart_argv(self.bin, unit), check=False)


def available(systemctl: str = "systemctl") -> bool:
    """systemd can be asked: it is the init system and `systemctl` is on PATH.

    (A stand-in `systemctl` is used only when settings say `health.supervisor = "systemd"`.)
    """
    return systemd_is_pid1() and shutil.which(systemctl) is not None


def pid1_name() -> str:
    try:
        return str(psutil.Process(1).name())
    except psutil.Error:
        return "?"

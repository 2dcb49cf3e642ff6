"""The host's own diagnostic programs, as an operator runs them: their text, unparsed.

`vmkeeper bundle` keeps what `df -h`, `free -h`, `ss -ltnp` and `journalctl -u <unit>` print,
because whoever reads a support bundle knows those outputs by sight; the parsed facts health
judges come from adapters.host instead. argv builders are pure; each run has a timeout.
"""

from __future__ import annotations

import re

from vmkeeper import proc
from vmkeeper.adapters import host
from vmkeeper.errors import CommandNotFound

_NODE_MAJOR = re.compile(r"v?(\d+)\.")


def df_argv(inodes: bool = False) -> list[str]:
    return ["df", "-ih" if inodes else "-h"]


def free_argv() -> list[str]:
    return ["free", "-h"]


def ss_argv() -> list[str]:
    # The runbook's `sudo ss -ltnp`, with its header line kept for the reader.
    return ["ss", "-ltnp"]


def unit_journal_argv(unit: str, lines: int = 200) -> list[str]:
    return ["journalctl", "-u", unit, "-n", str(lines), "--no-pager"]


def node_version_argv() -> list[str]:
    return ["node", "-v"]


def node_version(*, timeout: float, runner: proc.Runner = proc.run) -> str:
    """What ``node -v`` prints (``v20.11.1``): health, doctor, the sandbox and the bundle all
    ask this one way. Raises the CommandError subclasses of proc.run."""
    return first_line(node_version_argv(), timeout=timeout, runner=runner)


def node_major(version: str | None) -> int | None:
    """20 for ``v20.11.1`` (PM2 reports ``20.11.1``); None when it is not a version."""
    match = _NODE_MAJOR.match(version or "")
    return int(match.group(1)) if match else None


def npm_version_argv() -> list[str]:
    return ["npm", "-v"]


def ffmpeg_version_argv(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-version"]


def output(argv: list[str], *, timeout: float, runner: proc.Runner = proc.run) -> str:
    """What ``argv`` prints on stdout. Raises the CommandError subclasses of proc.run."""
    return runner(argv, timeout=timeout).stdout


def first_line(argv: list[str], *, timeout: float, runner: proc.Runner = proc.run) -> str:
    text = output(argv, timeout=timeout, runner=runner).strip()
    return text.splitlines()[0] if text else ""


def listening_text(*, timeout: float, runner: proc.Runner = proc.run) -> tuple[str, str]:
    """Listening TCP sockets as text and which program said so: `ss -ltnp`, else psutil."""
    try:
        return output(ss_argv(), timeout=timeout, runner=runner), "ss -ltnp"
    except CommandNotFound:
        pass
    # No iproute2 (slim images): psutil sees the same sockets, owners where permitted.
    found = host.listeners_psutil(range(1, 65536))
    rows = ["address\tport\tpid\tprocess"] + [
        f"{item.address}\t{item.port}\t{item.pid or '-'}\t{item.process or '-'}"
        for item in sorted(found, key=lambda listener: (listener.port, listener.address))
    ]
    return "\n".join(rows) + "\n", "psutil"

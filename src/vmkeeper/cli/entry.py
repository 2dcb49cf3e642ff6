"""The ``vmkeeper`` program: ``python -m vmkeeper`` and the installed script both start here.

One thing happens before the CLI (typer, rich, pydantic: ~0.3 s of imports on this VM kind)
is imported: for ``media reverse SRC DST`` the reversal's worker starts, so that PyAV loads
while the CLI does (``media/warm.py``). Everything else is :func:`vmkeeper.cli.main.run`.
"""

from __future__ import annotations

import sys


def run() -> None:
    from vmkeeper.media import warm

    warm.start_early(sys.argv[1:])
    try:
        from vmkeeper.cli.main import run as cli_run

        cli_run()
    finally:
        warm.discard_early()  # a worker the command did not take (another command, an error)

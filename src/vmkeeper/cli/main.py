"""The `vmkeeper` command: global options, the command groups, and the one error handler.

Imports here are only what every start needs (typer): the commands are loaded by
:mod:`vmkeeper.cli.registry` when run, Rich and the settings when first used, so `--help` starts
in well under 0.15 s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from vmkeeper.cli.registry import LazyGroup
from vmkeeper.errors import VmkeeperError

# typer 0.2x vendors click (typer._click); the base of its usage errors is found from a public
# name so this works with either layout.
ClickException: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)

app = typer.Typer(
    name="vmkeeper",
    help="Keep a web app on one small VM deployed, healthy and recoverable.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _parse_flags(pairs: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"--set takes KEY=VALUE, got {pair!r}", param_hint="--set")
        flags[key.strip()] = value
    return flags


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML settings file (else VMKEEPER_CONFIG, else "
        "/etc/vmkeeper/vmkeeper.toml)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override one setting for this run: --set releases.keep=3."
    ),
) -> None:
    # Only once a command runs (not for --help): structlog and the settings cost ~0.1 s to import.
    from vmkeeper import logs
    from vmkeeper.cli.common import CliState

    logs.configure()  # before anything logs: structlog's default prints on stdout, --json's
    ctx.obj = CliState(config_path=config, flags=_parse_flags(set_))


def _print_error(message: str) -> None:
    from vmkeeper.cli.common import stderr_console

    stderr_console().print(message, markup=True, highlight=False)


def _crash_log(error: BaseException) -> Path:
    import tempfile
    import traceback
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "vmkeeper"
    for folder in (base, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"vmkeeper-crash-{stamp}-{os.getpid()}.log"
            path.write_text(
                "vmkeeper " + " ".join(sys.argv[1:]) + "\n\n"
                + "".join(traceback.format_exception(error))
            )
            return path
        except OSError:
            continue
    return Path("(could not write a crash log)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code; errors never escape as tracebacks."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="vmkeeper", standalone_mode=False)
    except VmkeeperError as error:
        _print_error(f"[red]error:[/red] {error}")
        return error.exit_code
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        _print_error("aborted.")
        return 130
    except ClickException as error:
        error.show(file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except SystemExit as done:  # rich exits 1 on a closed pipe (`vmkeeper … | head`)
        return done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        _print_error("interrupted.")
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that catches everything
        path = _crash_log(error)
        _print_error(
            f"[red]error:[/red] vmkeeper failed unexpectedly ({type(error).__name__}: {error}); "
            f"the traceback is in {path}. Please report it with that file."
        )
        return 1
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())

"""The `vmkeeper` command: global options, the command groups, and the one error handler."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer

# typer 0.2x vendors click (typer._click); the base of its usage errors is found from a public
# name so this works with either layout.
ClickException: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)

from vmkeeper import logs
from vmkeeper.cli import config as config_cli
from vmkeeper.cli.common import CliState, stderr_console
from vmkeeper.errors import VmkeeperError

app = typer.Typer(
    name="vmkeeper",
    help="Keep a web app on one small VM deployed, healthy and recoverable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_cli.app, name="config")


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
    ctx.obj = CliState(config_path=config, flags=_parse_flags(set_))


def _register() -> None:
    # Command groups register themselves here; imported late so `--help` stays fast.
    from vmkeeper.cli import registry

    registry.register(app)


def _crash_log(error: BaseException) -> Path:
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
    # The entry point configures logging (importing the package does not): before anything logs,
    # since structlog's default prints debug lines on stdout, which --json owns.
    logs.configure()
    _register()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="vmkeeper", standalone_mode=False)
    except VmkeeperError as error:
        stderr_console().print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        return error.exit_code
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        stderr_console().print("aborted.")
        return 130
    except ClickException as error:
        error.show(file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except SystemExit as done:  # rich exits 1 on a closed pipe (`vmkeeper … | head`)
        return done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        stderr_console().print("interrupted.")
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that catches everything
        path = _crash_log(error)
        stderr_console().print(
            f"[red]error:[/red] vmkeeper failed unexpectedly ({type(error).__name__}: {error}); "
            f"the traceback is in {path}. Please report it with that file."
        )
        return 1
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())

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

from vmkeeper.cli.common import ClickException, CliState, InternalFailure, escape, stderr_console
from vmkeeper.cli.registry import LazyGroup
from vmkeeper.errors import VmkeeperError

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
    # Only once a command runs (not for --help): logging is configured, settings load lazily.
    from vmkeeper import logs

    logs.configure()  # before anything logs: an entry point, importing vmkeeper configures nothing
    ctx.obj = CliState(config_path=config, flags=_parse_flags(set_))


def _masked_argv(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``args`` with secret values masked, and those values (to mask them anywhere else).

    `--set media.token=…` (any key the settings mark secret, or a table of secret entries)
    keeps its key; every other ``NAME=value`` goes through proc's argv masking.
    """
    from vmkeeper import proc
    from vmkeeper.settings import secret_entry_keys, secret_keys

    hidden = secret_keys() | secret_entry_keys()
    masked: list[str] = []
    values: list[str] = []
    after_set = False
    for arg in args:
        prefix, pair = ("--set=", arg[6:]) if arg.startswith("--set=") else \
            ("", arg) if after_set else ("", "")
        key, eq, value = pair.partition("=")
        if eq and key.strip() in hidden:
            masked.append(f"{prefix}{key}=***")
            values.append(value)
        else:
            masked.append(proc.mask_arg(arg))
        after_set = arg == "--set"
    return masked, [value for value in values if value]


def _scrubbed(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    try:
        from vmkeeper.redact import redact_text
    except ImportError:
        return text
    try:
        return redact_text(text)
    except Exception:  # noqa: BLE001 - a crash log must be written even if the redactor fails
        return text


def _crash_log(error: BaseException, shown: Sequence[str], secrets: Sequence[str]) -> Path:
    """The traceback in a new 0600 file (argv and text redacted), under XDG state or /tmp."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "vmkeeper"
    text = _scrubbed("vmkeeper " + " ".join(shown) + "\n\n"
                     + "".join(traceback.format_exception(error)), secrets)
    # O_EXCL|O_NOFOLLOW: in the shared /tmp a planted symlink at the predictable name must not
    # be written through; 0600 from creation: tracebacks hold paths, hosts and values.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    # A name taken (two crashes in one second, or something planted there) takes the next.
    names = [f"vmkeeper-crash-{stamp}-{os.getpid()}{f'-{n}' if n else ''}.log" for n in range(8)]
    for folder in (base, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        for name in names:
            try:
                descriptor = os.open(folder / name, flags, 0o600)
            except FileExistsError:
                continue
            except OSError:
                break
            with os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(text)
            return folder / name
    return Path("(could not write a crash log)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code; errors never escape as tracebacks."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="vmkeeper", standalone_mode=False)
    except VmkeeperError as error:
        # Escaped: messages quote paths and names from outside ("[/x]" is rich markup).
        stderr_console().print(f"[red]error:[/red] {escape(str(error))}", markup=True,
                               highlight=False)
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
        # A monitoring command's own failure is "unknown" (3), not "warn" (1): InternalFailure.
        cause = error.__cause__ if isinstance(error, InternalFailure) and error.__cause__ \
            else error
        shown, secrets = _masked_argv(args)
        path = _crash_log(cause, shown, secrets)
        stderr_console().print(
            f"[red]error:[/red] vmkeeper failed unexpectedly ({type(cause).__name__}: "
            f"{escape(_scrubbed(str(cause), secrets))}); the traceback is in {path}. "
            "Please report it with that file.", markup=True, highlight=False,
        )
        return error.exit_code if isinstance(error, InternalFailure) else 1
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())

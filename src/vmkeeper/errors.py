"""The error hierarchy. Each known error carries the exit code the CLI returns for it.

A failed health check or a rejected input is a value in a result, not an exception; these are
for things that stop a command.
"""

from __future__ import annotations


class VmkeeperError(Exception):
    """A known failure: the CLI prints ``str(error)`` as one sentence and exits ``exit_code``."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(VmkeeperError):
    """Bad command-line usage."""

    exit_code = 2


class SettingsError(VmkeeperError):
    """A setting has a bad value; the message names the key, its source and what is expected."""

    exit_code = 2


class CommandError(VmkeeperError):
    """Base for failures of an external program run through :mod:`vmkeeper.proc`."""


class CommandNotFound(CommandError):
    pass


class CommandTimeout(CommandError):
    pass


class CommandFailed(CommandError):
    pass


class DeployError(VmkeeperError):
    pass


class LockHeld(VmkeeperError):
    pass


class SandboxError(VmkeeperError):
    pass


class BreakerOpen(VmkeeperError):
    pass


class MediaRejected(VmkeeperError):
    """An input refused by the media limits before any FFmpeg starts (the caller's error)."""


class MediaError(VmkeeperError):
    """A media run that failed (crash, timeout, bad output)."""


class InputError(VmkeeperError, ValueError):
    """Outside input (a file, a program's output) vmkeeper cannot take in as it is.

    A ValueError too, so code that falls back on unparsable input (`except ValueError`) still
    does."""

    exit_code = 2

"""vmkeeper: keep a web app on one small VM deployed, healthy and recoverable."""

from vmkeeper import logs as _logs

__version__ = "0.1.0"

# Before anything logs: structlog's default prints debug lines on stdout, which --json owns.
_logs.configure()

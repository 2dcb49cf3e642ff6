"""vmkeeper: keep a web app on one small VM deployed, healthy and recoverable."""

__version__ = "0.1.0"

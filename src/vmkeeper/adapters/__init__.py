"""Adapters: the only code that touches the outside world (programs, HTTP, the host)."""

"""Fuzz targets: each takes the bytes a fuzzer made and fails only on a crash.

A crash is an exception other than the clear error a bad input must raise (a `VmkeeperError`),
or a broken promise of the target (redaction not idempotent, JSON that stops being JSON).
`run_fuzz.py` runs a target under atheris; `test_fuzz.py` replays every input kept in
`crashes/<target>/` in the fast tier and runs each target for a few seconds in the slow tier.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from vmkeeper.errors import VmkeeperError


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def redactor(data: bytes) -> None:
    from vmkeeper.redact import DocumentKind, redact_document

    text = _text(data)
    first = redact_document(text)
    again = redact_document(first.text)
    if again.text != first.text:
        raise AssertionError("redacting twice changed the text")
    if first.kind is DocumentKind.TEXT and first.text.count("\n") != text.count("\n"):
        raise AssertionError("text lost or gained lines")
    if first.kind is DocumentKind.JSON and text.lstrip("\ufeff \t\r\n")[:1] in ("[", "{"):
        try:
            json.loads(text.lstrip("\ufeff"))
        except (ValueError, RecursionError):
            return
        json.loads(first.text.lstrip("\ufeff"))  # JSON in, JSON out


def kernel_log(data: bytes) -> None:
    from vmkeeper.diagnose.oom_parser import parse_kernel_log  # the parser's public entry point

    parse_kernel_log(data)  # raw bytes, as a log file or a pipe gives them


def pm2_output(data: bytes) -> None:
    from vmkeeper.adapters.pm2 import parse_dump, parse_jlist

    for parse in (parse_jlist, parse_dump):
        with contextlib.suppress(VmkeeperError):
            parse(_text(data))


def settings_file(data: bytes) -> None:
    from vmkeeper.settings import load_settings

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vmkeeper.toml"
        path.write_bytes(data)
        with contextlib.suppress(VmkeeperError):
            load_settings(path, env={})


TARGETS: dict[str, Callable[[bytes], None]] = {
    "redactor": redactor, "kernel_log": kernel_log, "pm2_output": pm2_output,
    "settings_file": settings_file,
}

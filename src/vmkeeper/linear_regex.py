"""Regular expressions for input from outside, in time linear in its length (RE2).

Python's `re` backtracks: a pattern that searches for `(.+?)\\)` or a run of `[\\w.]+` tries again
from every position of a hostile line, and a 40 KB kernel-log line took seconds (26 of them, 40 s).
RE2 (Google's engine, `google-re2` on PyPI) never backtracks: every search is linear in the text,
whatever the pattern, so the guarantee holds by construction instead of by review. It has no
lookaround and no backreferences; patterns here are written without them. The module imports
RE2 only when a pattern is first compiled, so a command that parses nothing never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class Match(Protocol):
    """The part of re.Match that RE2's match offers (groups by name or number)."""

    def group(self, group: str | int = 0, /) -> str | Any: ...

    def start(self, group: int = 0, /) -> int: ...

    def end(self, group: int = 0, /) -> int: ...

    def span(self, group: int = 0, /) -> tuple[int, int]: ...


class Pattern(Protocol):
    """A compiled pattern: search, match at the start, and every match in turn."""

    def search(self, text: str, pos: int | None = None) -> Match | None: ...

    def match(self, text: str, pos: int | None = None) -> Match | None: ...

    def finditer(self, text: str, pos: int | None = None) -> Iterator[Match]: ...


def compile(pattern: str, *, max_mem: int | None = None) -> Pattern:
    """``pattern`` compiled by RE2; a pattern RE2 cannot run (lookaround) raises re2.error.

    ``max_mem`` raises RE2's memory budget for a large alternation (the redactor's providers).
    """
    import re2

    options = re2.Options()
    options.log_errors = False  # a bad pattern raises; RE2 would also print it on stderr
    if max_mem is not None:
        options.max_mem = max_mem
    compiled: Pattern = re2.compile(pattern, options)
    return compiled

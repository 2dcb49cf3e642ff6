"""The one wait in the tests: poll a condition until it holds, never sleep to "let it start"."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Return the first truthy value of ``predicate()`` within ``timeout`` seconds.

    Raises AssertionError naming ``what`` (and the last exception the predicate raised, if any)
    when the condition never held: a test failure that says what it waited for.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as error:  # noqa: BLE001 - a condition not met yet, kept for the message
            last_error, value = error, None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)

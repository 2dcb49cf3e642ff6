"""Result objects as plain JSON values: the one shape `--json`, the agent and bundles share."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vmkeeper.errors import InputError, VmkeeperError

# Deeper than any dump, jlist or result (PM2's are 5 levels), shallow enough for every recursive
# walker over a parsed document (redaction, to_jsonable, json.dumps) to stay far from Python's
# recursion limit: 900 levels passed json.loads and then crashed the redactor.
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, NamedTuples, pydantic models, enums, paths and datetimes as plain JSON."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a NamedTuple: an object
        return to_jsonable(value._asdict())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def json_text(value: Any) -> str:
    """The one JSON printer (``--json``, bundles): ``value`` as standard JSON (RFC 8259), so no
    NaN or Infinity (ValueError), and ASCII escapes when it holds a lone surrogate, which UTF-8
    cannot carry."""
    plain = to_jsonable(value)
    text = json.dumps(plain, indent=2, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(plain, indent=2, ensure_ascii=True, allow_nan=False)
    return text


def parse_json(text: str | bytes, what: str, *,
               error: type[VmkeeperError] = InputError) -> Any:
    """Parse outside JSON; raise ``error`` naming ``what`` if it is nested deeper than MAX_DEPTH,
    holds a lone UTF-16 surrogate (``"\\ud800"``: valid JSON, not text — writing it as UTF-8
    fails later, far from here) or Python's NaN/Infinity extension. Invalid JSON raises
    json.JSONDecodeError as json does.
    """

    def refuse_constant(name: str) -> Any:
        raise error(f"{what} holds {name}, which is not JSON; fix what wrote it.")

    try:
        document = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise error(f"{what} is JSON nested deeper than {MAX_DEPTH} levels: no file vmkeeper "
                    "reads is; check what wrote it.") from None
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:  # iterative: the point is not to recurse on hostile depth
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise error(f"{what} is JSON nested deeper than {MAX_DEPTH} levels: no file "
                            "vmkeeper reads is; check what wrote it.")
            items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
            for key, value in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise error(_surrogate_message(what))
                stack.append((value, depth + 1))
        elif isinstance(node, str) and _SURROGATE.search(node):
            raise error(_surrogate_message(what))
    return document


def _surrogate_message(what: str) -> str:
    return (f"{what} holds a lone UTF-16 surrogate escape (such as \\ud800) in a string, "
            "which is not text; fix what wrote it.")

"""Documents: JSON (a dump, a jlist, with PM2's banner or a BOM before it), env files, text.

JSON is parsed and walked: a value under a secret key is replaced whole, unless the value says
it holds none (`"AUTH_RETRIES": 3`); every other string is scanned like text, a string that is
itself JSON is walked in turn, and an argv array (`["tunnel","run","--token","eyJ…"]`) loses
the argument after each secret flag. A document JSON cannot read stays text.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import PurePosixPath
from typing import Any

from vmkeeper.jsonable import parse_json
from vmkeeper.redact import DocumentKind, Finding, Redaction
from vmkeeper.redact.names import DESCRIPTORS, key_kind, plain_value, words
from vmkeeper.redact.scan import (
    apply_spans,
    argument_is_secret,
    find_spans,
    flag_kind,
    marker,
    merge,
    redact_value,
)
from vmkeeper.redact.shapes import Span

_BOM = "\ufeff"
_TOOL_KEYS = ("script", "pm_exec_path", "exec", "command", "cmd", "exec_interpreter",
              "interpreter")
# PM2 prints a few lines (`[PM2] Spawning PM2 daemon…`) before the JSON; look this far for it.
_PREAMBLE_LINES = 64
_DECODER = json.JSONDecoder()


# ------------------------------------------------------------------------------ kinds

def _json_span(text: str) -> tuple[int, int] | None:
    """Where the JSON document in ``text`` starts and ends, or None: at the top, or after a
    banner (`[PM2] Spawning PM2 daemon…`), with a warning PM2 printed after it allowed."""
    offset = 0
    for count, line in enumerate(text.split("\n")):
        if count >= _PREAMBLE_LINES:
            break
        stripped = line.lstrip()
        if stripped[:1] in ("{", "["):
            end = _parses(text, offset + len(line) - len(stripped))
            if end is not None:
                return offset, end
        offset += len(line) + 1
    return None


def _parses(text: str, start: int) -> int | None:
    """The end of the JSON value at ``start`` if only whitespace, or text lines that are not
    JSON, follow it (an array only: that is what PM2 prints before its warnings)."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    rest = text[end:].lstrip()
    if rest and (not isinstance(value, list) or rest[:1] in ("{", "[")):
        return None
    return end


def _is_env_line(line: str) -> bool:
    body = line.strip()
    if body.startswith("export "):
        body = body[7:].lstrip()
    key, eq, _value = body.partition("=")
    return bool(eq) and bool(key) and (key[0].isalpha() or key[0] == "_") \
        and all(c.isalnum() or c in "_.-" for c in key)


def detect_kind(text: str) -> DocumentKind:
    text = text.removeprefix(_BOM)
    if _json_span(text) is not None:
        return DocumentKind.JSON
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and sum(1 for ln in lines if _is_env_line(ln)) >= max(1, int(len(lines) * 0.8)):
        return DocumentKind.ENV
    return DocumentKind.TEXT


def redact_document(text: str, kind: DocumentKind | None = None) -> Redaction:
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom):]
    kind = kind or detect_kind(body)
    findings: list[Finding] = []
    if kind is DocumentKind.JSON:
        result = _redact_json_text(body, findings)
        if result is None:
            kind, findings = DocumentKind.TEXT, []
        else:
            return Redaction(kind, bom + result, tuple(findings))
    env = kind is DocumentKind.ENV
    return Redaction(kind, bom + _redact_lines(body, env, findings), tuple(findings))


# ------------------------------------------------------------------------------ JSON

def _redact_json_text(text: str, findings: list[Finding]) -> str | None:
    span = _json_span(text)
    if span is None:
        return None
    start, end = span
    document = text[start:end]
    before = len(findings)
    try:
        redacted = redact_tree(parse_json(document, "the input"), findings)
    except (ValueError, RecursionError):
        return None  # nesting deeper than Python recurses: read as text
    preamble = _redact_lines(text[:start], False, findings) if start else ""
    trailer = _redact_lines(text[end:], False, findings) if text[end:].strip() else text[end:]
    if len(findings) == before:
        return text  # nothing found: the document exactly as it came
    # The producer's layout, coarsely: PM2 pretty-prints dump.pm2 and writes jlist compact.
    indent = 2 if "\n" in document.strip() else None
    spaced = '": ' in document[:2000] or '", "' in document[:2000]
    separators = None if indent or spaced else (",", ":")
    try:
        out = json.dumps(redacted, indent=indent, separators=separators, ensure_ascii=False,
                         allow_nan=False)
        out.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, kept as the escape it was written as
        out = json.dumps(redacted, indent=indent, separators=separators, allow_nan=False)
    except ValueError:
        return None  # `1e999` parses to infinity, which JSON cannot write back
    return preamble + out + trailer


def redact_tree(value: Any, findings: list[Finding]) -> Any:
    """A copy of a parsed JSON value with every secret replaced, the findings appended."""
    return _walk(value, "$", None, findings, frozenset())


def _tools_of(entry: dict[Any, Any]) -> frozenset[str]:
    names = set()
    for key in _TOOL_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            names.add(PurePosixPath(value.split()[0]).name.lower())
    return frozenset(names)


def _describes(key: str) -> bool:
    return any(word in DESCRIPTORS for word in words(key))


def _walk(value: Any, path: str, under: str | None, findings: list[Finding],
          tools: frozenset[str]) -> Any:
    if isinstance(value, dict):
        tools = tools | _tools_of(value)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key)
            kind = key_kind(name)
            child_under = kind or (None if _describes(name) else under)
            out[key] = _walk_item(item, f"{path}.{name}", name, child_under, findings, tools)
        return out
    if isinstance(value, list):
        return _walk_list(value, path, under, findings, tools)
    return _walk_item(value, path, None, under, findings, tools)


def _walk_item(item: Any, path: str, name: str | None, under: str | None,
               findings: list[Finding], tools: frozenset[str]) -> Any:
    if isinstance(item, (dict, list)):
        return _walk(item, path, under, findings, tools)
    if isinstance(item, bool) or item is None:
        return item
    if under is not None and isinstance(item, (str, int, float)):
        text = str(item)
        decided = key_kind(name, text) if name is not None else (None if plain_value(text)
                                                                  else under)
        if decided is not None:
            findings.append(Finding(decided, path, name))
            return marker(decided)
    if isinstance(item, str):
        return _redact_string(item, path, name, findings)
    return item


def _redact_string(text: str, path: str, name: str | None, findings: list[Finding]) -> str:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        nested: list[Finding] = []
        result = _redact_json_text(text, nested)
        if result is not None and nested:
            findings.extend(Finding(f.kind, path + f.location[1:] if f.location.startswith("$")
                                    else f"{path} {f.location}", f.name) for f in nested)
            return result
    redacted, spans = redact_value(text)
    findings.extend(Finding(span.kind, path, span.name or name) for span in spans)
    return redacted


def _walk_list(items: list[Any], path: str, under: str | None, findings: list[Finding],
               tools: frozenset[str]) -> list[Any]:
    tools = tools | {PurePosixPath(item).name.lower() for item in items[:8]
                     if isinstance(item, str) and item and not item.startswith("-")}
    out: list[Any] = []
    pending: tuple[str, str, bool] | None = None  # the secret flag the previous item was
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if isinstance(item, str) and pending is not None:
            flag, kind, by_tool = pending
            pending = None
            if not item.startswith("-") and argument_is_secret(flag, item, by_tool):
                findings.append(Finding(kind, where, flag))
                out.append(marker(kind))
                continue
        pending = None
        if isinstance(item, str) and item.startswith("-"):
            found = flag_kind(item, set(tools))
            if found is not None:
                kind, attached, by_tool = found
                if attached and not plain_value(item[attached:]):
                    findings.append(Finding(kind, where, item[:attached]))
                    out.append(item[:attached] + marker(kind))
                    continue
                if not attached:
                    pending = (item, kind, by_tool)
        out.append(_walk_item(item, where, None, under, findings, tools))
    return out


# ------------------------------------------------------------------------------ env and text

def _env_spans(text: str) -> list[Span]:
    """The values of secret keys in an env file, multi-line quoted values included."""
    spans: list[Span] = []
    offset = 0
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        line_start = offset
        offset += len(line) + 1
        index += 1
        if not _is_env_line(line) or line.lstrip().startswith("#"):
            continue
        key_part, _eq, raw = line.partition("=")
        key = key_part.strip().removeprefix("export ").strip()
        value_start = line_start + len(key_part) + 1 + (len(raw) - len(raw.lstrip()))
        value = raw.strip()
        quote = value[:1] if value[:1] in ("'", '"') else ""
        end = line_start + len(line.rstrip())
        if quote and (len(value) == 1 or not value.endswith(quote)):
            while index < len(lines):  # a quoted value that goes on over the next lines
                following = lines[index]
                offset += len(following) + 1
                index += 1
                if following.rstrip().endswith(quote):
                    end = offset - 1 - (len(following) - len(following.rstrip()))
                    break
            else:
                end = len(text)
        body = text[value_start:end]
        unquoted = body[1:-1] if quote and len(body) >= 2 and body.endswith(quote) else body
        kind = key_kind(key, unquoted.strip())
        if kind is None or not unquoted.strip():
            continue
        inner_start = value_start + (1 if quote else 0)
        inner_end = end - (1 if quote and body.endswith(quote) and len(body) >= 2 else 0)
        spans.append(Span(inner_start, inner_end, kind, key))
    return spans


def _redact_lines(text: str, env: bool, findings: list[Finding]) -> str:
    spans = find_spans(text)
    if env:
        spans += _env_spans(text)
    merged = merge(spans)
    newlines: list[int] = []
    position = text.find("\n") if merged else -1
    while position >= 0:
        newlines.append(position)
        position = text.find("\n", position + 1)
    for span in merged:
        line = bisect_left(newlines, span.start) + 1
        location = f"line {line}" + (f" ({span.name})" if span.name else "")
        findings.append(Finding(span.kind, location, span.name))
    return apply_spans(text, merged) if merged else text

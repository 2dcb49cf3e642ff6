"""Find every secret in a piece of text as spans: `key=value` pairs, argv pairs, shapes.

A span is where a secret is, never what it is; `apply_spans` replaces the union of all spans
with markers, keeping every newline, so a text keeps its lines and a JSON string its form.
Each detector makes one RE2 pass per line (linear by construction); the Python around it only
looks at what a match names, and never rescans text it has already hidden.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from functools import cache
from typing import Any

from vmkeeper import linear_regex
from vmkeeper.redact import shapes
from vmkeeper.redact.names import key_kind, plain_value
from vmkeeper.redact.shapes import Span


def marker(kind: str) -> str:
    return f"«redacted:{kind}»"


# `key = value`, `key: value`, `"key": "value"`, `\"key\":\"value\"`, `key => value`: the key and
# the separator. The value is read after the match, so that `url=https://x?token=…` still finds
# the `token=` inside the url's value.
_STEMS = ("pass|pw|psw|secret|token|key|auth|cred|cookie|salt|pepper|dsn|jwt|bearer|netrc|user"
          "|login|usr|pword|sig")
_ASSIGNMENT = (
    r"(?:\\\"((?:[^\"\\\n]|\\[^\"\n])*?(?i:" + _STEMS + r")(?:[^\"\\\n]|\\[^\"\n])*)\\\""
    r"|\"((?:[^\"\\\n]|\\.)*?(?:(?i:" + _STEMS + r")|\\u[0-9a-fA-F]{4})(?:[^\"\\\n]|\\.)*)\""
    r"|'([^'\n]*?(?i:" + _STEMS + r")[^'\n]*)'"
    r"|([A-Za-z0-9_.$-]*(?i:" + _STEMS + r")[A-Za-z0-9_.$-]*))"
    r"[ \t]*(?:=>|:=|=|:)[ \t]*"
)
# Only keys that hold a secret word are matched: an ordinary log costs one pass and no match.
# Groups: 1 \\"key\\", 2 "key", 3 'key', 4 key. (The binding's Match takes group numbers only.)
# A flag in a command line or an argv array: `--token X`, `"--password", "X"`, `-pX`.
_FLAG = (r"(?:^|[\s\"'\[,(])(--?[A-Za-z0-9_.-]*(?i:" + _STEMS + r")[A-Za-z0-9_.-]*"
         r"|-[A-Za-z]\S*|--(?:proxy-)?user)")
_HEADER_KEYS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
                "x-auth-token", "x-access-token", "api-key", "x-vault-token"}
# A value's characters, as one character class: a lone class cannot backtrack (stdlib `re`).
_VALUE_RUN = re.compile(r"[^ \t\n\r\"',;&<>)}\]«`\\]*")
_HEADER_RUN = re.compile(r"[^\n\r\"'`\\]*")
# Tools whose short flags take a password: `mysql -pX`, `redis-cli -a X`, `sshpass -p X`.
ATTACHED = {"mysql": "p", "mysqldump": "p", "mysqladmin": "p", "mariadb": "p",
            "mariadb-dump": "p", "mysqlimport": "p", "mysqlcheck": "p", "redis-cli": "a",
            "sshpass": "p"}
SEPARATE = {"redis-cli": "-a", "sshpass": "-p", "mongo": "-p", "mongosh": "-p",
            "mongodump": "-p", "mongorestore": "-p", "mongoexport": "-p", "mongoimport": "-p"}
USER_PASS = {"curl": ("-u", "--user", "--proxy-user", "-U"), "wget": ()}


@cache
def _patterns() -> tuple[Any, Any]:
    return linear_regex.compile(_ASSIGNMENT), linear_regex.compile(_FLAG)


def _unescape_key(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        decoded = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return decoded if isinstance(decoded, str) else raw


def _value_extent(text: str, start: int, header: bool) -> tuple[int, int]:
    """Where the value that begins at ``start`` ends (its quotes excluded)."""
    if text.startswith('\\"', start):
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        end = text.find('\\"', start + 2, line_end)
        return start + 2, line_end if end < 0 else end
    quote = text[start:start + 1]
    if quote in ('"', "'"):
        position = start + 1
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        while True:
            end = text.find(quote, position, line_end)
            if end < 0:
                return start + 1, line_end
            backslashes = 0
            while end - 1 - backslashes > start and text[end - 1 - backslashes] == "\\":
                backslashes += 1
            if quote == "'" or backslashes % 2 == 0:
                return start + 1, end
            position = end + 1
    if text.startswith(("${", "{{", "$("), start):
        closing = text.find(")" if text[start + 1] == "(" else "}", start, start + 200)
        if closing > 0:
            return start, closing + (2 if text.startswith("}}", closing) else 1)
    run = _HEADER_RUN if header else _VALUE_RUN
    end = start
    while True:
        match = run.match(text, end)
        end = match.end() if match else end
        # A backslash ends the value only as the escape of a quote or a newline (`\"`, `\n`).
        if text[end:end + 1] != "\\" or text[end + 1:end + 2] in ('"', "n", "r", "t", ""):
            break
        end += 1
    if not header and text[end:end + 1] == " ":
        # `Password=two words;` in a connection string: the value runs to the `;`.
        window = text[end:end + 200]
        semicolon = window.find(";")
        if semicolon > 0 and "=" not in window[:semicolon] and "\n" not in window[:semicolon]:
            end += semicolon
    return start, end


def assignment_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    hidden_until = -1
    for match in _patterns()[0].finditer(text):
        if match.start() < hidden_until:
            continue
        raw = match.group(4) or match.group(2) or match.group(3) or match.group(1) or ""
        key = _unescape_key(raw)
        if key_kind(key) is None:
            continue
        header = key.lower() in _HEADER_KEYS
        begin = match.end()
        if header:
            begin = _past_scheme(text, begin)
        start, end = _value_extent(text, begin, header)
        value = text[start:end]
        if header:
            value = value.rstrip()
            end = start + len(value)
        kind = key_kind(key, value)
        if kind is None or not value or value.startswith("«"):
            continue
        spans.append(Span(start, end, kind, key))
        hidden_until = end
    return spans


def _past_scheme(text: str, start: int) -> int:
    # `Authorization: Bearer X`: the scheme word is no secret, the credential after it is.
    word = text[start:start + 12].split(" ", 1)[0].lower()
    if word in ("bearer", "basic", "digest", "token", "negotiate", "ntlm") \
            and text[start + len(word):start + len(word) + 1] == " ":
        return start + len(word) + 1
    return start


def _tools(line: str) -> set[str]:
    lowered = line.lower()
    found = set()
    for tool in (*ATTACHED, *SEPARATE, *USER_PASS):
        index = lowered.find(tool)
        while index >= 0:
            before = lowered[index - 1:index] if index else " "
            after = lowered[index + len(tool):index + len(tool) + 1]
            if not (before.isalnum() or before in "-_") and not (after.isalnum() or after in "-_"):
                found.add(tool)
                break
            index = lowered.find(tool, index + 1)
    return found


def flag_kind(flag: str, tools: set[str]) -> tuple[str, int, bool] | None:
    """For a flag token: the kind it names, where its attached value starts, and whether a
    tool's own convention (not the flag's name) says so; None for an ordinary flag.

    The offset is 0 when the secret is the next argument (`--token X`).
    """
    if "=" in flag:
        return None  # `--password=x` is an assignment
    for tool in tools:
        letter = ATTACHED.get(tool)
        if letter and len(flag) > 2 and flag[1] == letter and flag[0] == "-":
            return "password", 2, True
        if SEPARATE.get(tool) == flag:
            return "password", 0, True
        if tool in USER_PASS and flag in USER_PASS[tool]:
            return "credentials", 0, True
    if flag.startswith("-") and len(flag.lstrip("-")) > 1:
        kind = key_kind(flag.lstrip("-"))
        if kind is not None:
            return kind, 0, False
    return None


def argument_is_secret(flag: str, value: str, by_tool: bool) -> bool:
    if not value or value.startswith("«"):
        return False
    if by_tool:
        return not plain_value(value)
    return key_kind(flag.lstrip("-"), value) is not None


def _next_argument(text: str, position: int) -> int | None:
    """Where the argument after a flag begins (past spaces, or `", "` in an array), or None."""
    index = position
    while index < len(text) and text[index] in " \t":
        index += 1
    if index == position or index >= len(text):
        if text.startswith('"', position) or text.startswith("'", position) \
                or text.startswith('\\"', position):
            quote = '\\"' if text.startswith('\\"', position) else text[position]
            index = position + len(quote)
            while index < len(text) and text[index] in " \t":
                index += 1
            if index < len(text) and text[index] == ",":
                index += 1
                while index < len(text) and text[index] in " \t":
                    index += 1
                return index if index < len(text) else None
        return None
    return index


def _without_markers(line: str) -> str:
    """The line less our own markers: `«redacted:token»` is no word about secrets."""
    if "«redacted:" not in line:
        return line
    pieces = []
    position = 0
    while (start := line.find("«redacted:", position)) >= 0:
        pieces.append(line[position:start])
        end = line.find("»", start)
        position = len(line) if end < 0 else end + 1
    pieces.append(line[position:])
    return "".join(pieces)


class Lines:
    """Where each line of a text starts and ends, and what is cached about each line."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends: list[int] = []
        position = text.find("\n")
        while position >= 0:
            self.ends.append(position)
            position = text.find("\n", position + 1)
        self.ends.append(len(text))
        self._tools: dict[int, set[str]] = {}
        self._secret: dict[int, bool] = {}

    def index(self, position: int) -> int:
        return bisect_left(self.ends, position)

    def line(self, index: int) -> str:
        start = self.ends[index - 1] + 1 if index else 0
        return self.text[start:self.ends[index]]

    def tools(self, position: int) -> set[str]:
        index = self.index(position)
        if index not in self._tools:
            self._tools[index] = _tools(self.line(index))
        return self._tools[index]

    def about_secrets(self, position: int) -> bool:
        index = self.index(position)
        if index not in self._secret:
            self._secret[index] = shapes.secret_line(_without_markers(self.line(index)).lower())
        return self._secret[index]


def argv_spans(text: str, lines: Lines) -> list[Span]:
    if "-" not in text:
        return []
    spans: list[Span] = []
    hidden_until = -1
    for match in _patterns()[1].finditer(text):
        if match.start(1) < hidden_until:
            continue
        flag = match.group(1)
        found = flag_kind(flag, lines.tools(match.start(1)) if flag[1:2] != "-" or
                          flag in ("--user", "--proxy-user") else set())
        if found is None:
            continue
        kind, attached, by_tool = found
        if attached:
            start = match.start(1) + attached
            _, end = _value_extent(text, start, header=False)
            spans.append(Span(start, end, kind, flag[:attached]))
            hidden_until = end
            continue
        begin = _next_argument(text, match.end(1))
        if begin is None or text.startswith("-", begin):
            continue
        start, end = _value_extent(text, begin, header=False)
        value = text[start:end]
        if kind == "credentials" and ":" in value:
            start += value.index(":") + 1  # `curl -u user:pass`: the password
            value = text[start:end]
        if argument_is_secret(flag, value, by_tool):
            spans.append(Span(start, end, kind, flag))
            hidden_until = end
    return spans


def find_spans(text: str, depth: int = 0) -> list[Span]:
    """Every secret in ``text`` (any number of lines), as spans into it.

    Each detector is one pass over the whole text; what a match needs to know about its line
    (the tools named on it, whether it speaks of secrets) is looked up for matches only.
    """
    lines = Lines(text)
    spans = shapes.pem_spans(text)
    pems = merge(spans)
    pem_starts = [span.start for span in pems]

    def in_pem(position: int) -> bool:
        index = bisect_left(pem_starts, position + 1) - 1
        return index >= 0 and pems[index].end > position

    spans += shapes.provider_spans(text)
    spans += shapes.url_spans(text)
    spans += shapes.scheme_spans(text)
    if "=" in text or ":" in text:
        spans += assignment_spans(text)
    spans += argv_spans(text, lines)
    spans += shapes.long_token_spans(text, lines.about_secrets, in_pem, depth)
    return spans


def merge(spans: list[Span]) -> list[Span]:
    """The union of ``spans``: sorted, overlapping ones joined (the first one's kind kept)."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end <= span.start:
            continue
        if out and span.start < out[-1].end:
            last = out[-1]
            if span.end > last.end:
                out[-1] = Span(last.start, span.end, last.kind, last.name)
            continue
        out.append(span)
    return out


def apply_spans(text: str, spans: list[Span]) -> str:
    """``text`` with each merged span replaced by its marker and the newlines it held."""
    pieces: list[str] = []
    position = 0
    for span in merge(spans):
        pieces.append(text[position:span.start])
        pieces.append(marker(span.kind) + "\n" * text.count("\n", span.start, span.end))
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


def redact_value(text: str) -> tuple[str, list[Span]]:
    spans = merge(find_spans(text))
    return (apply_spans(text, spans) if spans else text), spans

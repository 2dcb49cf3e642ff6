"""The bundle's second pass over secrets: values its JSON files hold under secret names, swept
out of every file wherever they appear without their name.

PM2 dumps name every secret of the app's environment; the same value printed by an app into
its log, or passed in a command line, carries no name there. Sweeping those values out of
every file closes that gap, in the forms a log may print them: as is, URL-encoded, base64.
The redactor (vmkeeper.redact) then runs on the swept text as on any other document.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from vmkeeper.jsonable import parse_json
from vmkeeper.redact import DocumentKind, key_kind, marker, redact_document

# A secret shorter than this is too likely to occur by chance ("changeme" is 8) to be swept out
# of every other file by value; the redactor still finds it by key name and shape.
_MIN_SWEPT_SECRET = 8


def _walk_secrets(value: Any, under: str | None, found: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk_secrets(item, key_kind(str(key)) or under, found)
    elif isinstance(value, list):
        for item in value:
            _walk_secrets(item, under, found)
    elif under is not None and isinstance(value, str) and len(value) >= _MIN_SWEPT_SECRET \
            and not value.startswith("«"):
        found.setdefault(value, under)


def known_secrets(json_texts: Iterable[str]) -> dict[str, str]:
    """Every form (as is, URL-encoded, base64) of the values that ``json_texts`` hold under
    secret key names, each with its kind. A text that is not JSON is passed over."""
    found: dict[str, str] = {}
    for text in json_texts:
        try:
            _walk_secrets(parse_json(text, "a bundle file"), None, found)
        except ValueError:
            continue
    variants: dict[str, str] = {}
    for value, kind in found.items():
        raw = value.encode()
        for form in (value, quote(value, safe=""), quote_plus(value),
                     base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            for variant in (form, form.rstrip("=")):
                if len(variant) >= _MIN_SWEPT_SECRET:
                    variants.setdefault(variant, kind)
    return variants


def _sweep_string(text: str, secrets: Mapping[str, str]) -> tuple[str, int]:
    count = 0
    for value in sorted(secrets, key=len, reverse=True):  # longest first: a value's superset
        if value in text:
            count += text.count(value)
            text = text.replace(value, marker(secrets[value]))
    return text, count


def _sweep_json(value: Any, secrets: Mapping[str, str], counter: list[int]) -> Any:
    if isinstance(value, dict):
        return {k: _sweep_json(v, secrets, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_sweep_json(v, secrets, counter) for v in value]
    if isinstance(value, str):
        swept, count = _sweep_string(value, secrets)
        counter[0] += count
        return swept
    return value


def redact_file(text: str, kind: DocumentKind,
                secrets: Mapping[str, str]) -> tuple[str, int]:
    """``text`` with known secret values swept out, then redacted; and how many were."""
    if kind is DocumentKind.JSON:
        try:
            document = parse_json(text, "a bundle file")
        except ValueError:  # parse_json's InputError too (too deep, lone surrogates)
            kind = DocumentKind.TEXT  # a torn dump: keep its lines
        else:
            counter = [0]
            swept = _sweep_json(document, secrets, counter)
            # Sweep inside the parsed document, not the text: a value with a quote or a
            # backslash is spelled differently in JSON. Keep the producer's layout.
            indent = 2 if "\n" in text.strip() else None
            rendered = json.dumps(swept, indent=indent, ensure_ascii=False)
            if text.endswith("\n"):
                rendered += "\n"
            result = redact_document(rendered, DocumentKind.JSON)
            return result.text, counter[0] + len(result.findings)
    swept_text, count = _sweep_string(text, secrets)
    result = redact_document(swept_text, kind)
    return result.text, count + len(result.findings)

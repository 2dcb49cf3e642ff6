"""The redactor against its corpus: every planted secret gone, plain values kept, JSON valid.

tests/data/redact/secrets.jsonl holds secrets planted in real-shaped PM2 dumps, `pm2 jlist`
output (with PM2's banner and with a BOM), env files and logs, in more than 60 shapes;
plain.jsonl holds near misses: secret-ish names with counts, durations, paths and ids, and
ordinary PM2 fields and log text. Each record names its shape and its source; make_corpus.py
rebuilds both files.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from vmkeeper.redact import DocumentKind, Redaction, redact_document

DATA = Path(__file__).resolve().parents[1] / "data" / "redact"


def _records(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


SECRETS = _records("secrets.jsonl")
PLAIN = _records("plain.jsonl")


@cache
def _redacted(document: str) -> Redaction:
    return redact_document(document)


def _json_part(text: str) -> Any:
    body = text.removeprefix("\ufeff")
    start = min((body.find(c) for c in "[{" if body.find(c) >= 0), default=0)
    lines = body.split("\n")
    for index, line in enumerate(lines):  # after PM2's banner lines
        if line.lstrip()[:1] in ("[", "{"):
            try:
                return json.loads("\n".join(lines[index:]))
            except ValueError:
                continue
    return json.loads(body[start:])


def test_the_corpus_is_as_large_and_varied_as_promised() -> None:
    assert len(SECRETS) >= 300
    assert len({record["shape"] for record in SECRETS}) >= 60
    assert len(PLAIN) >= 300
    assert all(record["source"] for record in SECRETS + PLAIN)
    containers = {record["container"] for record in SECRETS}
    assert {"env", "dump.pm2", "jlist", "jlist-banner", "jlist-bom", "log"} <= containers


def test_every_planted_secret_is_hidden() -> None:
    leaked = [(record["shape"], record["container"]) for record in SECRETS
              if record["secret"] in _redacted(record["document"]).text]
    assert leaked == []


def test_at_least_98_percent_of_plain_values_are_kept() -> None:
    lost = [(record["shape"], record["keep"]) for record in PLAIN
            if record["keep"] not in _redacted(record["document"]).text]
    assert len(lost) <= len(PLAIN) * 0.02, lost


@pytest.mark.parametrize("records", [SECRETS, PLAIN], ids=["secrets", "plain"])
def test_json_documents_stay_json_with_their_banner_and_bom(records: list[dict[str, Any]]) -> None:
    for record in records:
        if record["container"] not in ("dump.pm2", "jlist", "jlist-banner", "jlist-bom", "json"):
            continue
        result = _redacted(record["document"])
        assert result.kind is DocumentKind.JSON, record["shape"]
        original, redacted = _json_part(record["document"]), _json_part(result.text)
        assert type(original) is type(redacted) and len(original) == len(redacted)
        if record["container"] == "jlist-banner":
            assert result.text.startswith("[PM2] Spawning PM2 daemon")
        if record["container"] == "jlist-bom":
            assert result.text.startswith("\ufeff")

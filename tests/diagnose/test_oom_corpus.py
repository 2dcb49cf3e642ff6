"""Every real kernel-log excerpt in tests/data/kernel/ parses to the fields checked by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmkeeper.diagnose.oom_model import OomEvent
from vmkeeper.diagnose.oom_parser import parse_kernel_log
from vmkeeper.diagnose.oom_verdict import build_report
from vmkeeper.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "data" / "kernel"
SAMPLES = sorted(p.name.removesuffix(".log") for p in CORPUS.glob("*.log"))


def _load(name: str) -> tuple[list[str], dict[str, Any]]:
    lines = (CORPUS / f"{name}.log").read_text(encoding="utf-8").splitlines(keepends=True)
    expected = json.loads((CORPUS / f"{name}.expected.json").read_text(encoding="utf-8"))
    return lines, expected


def _check_event(event: OomEvent, expected: dict[str, Any]) -> None:
    for key, value in expected["victim"].items():
        assert getattr(event.victim, key) == value, key
    for key in ("constraint", "score", "reaped", "time", "timestamp"):
        if key in expected:
            assert getattr(event, key) == expected[key], key
    if "timestamp_date" in expected:
        assert event.timestamp is not None
        assert event.timestamp.startswith(expected["timestamp_date"])
    if "memcg" in expected:
        assert event.memcg is not None
        assert event.memcg.oom_memcg == expected["memcg"]["oom_memcg"]
        assert event.memcg.task_memcg == expected["memcg"]["task_memcg"]
    if "invoker" in expected:
        if expected["invoker"] is None:
            assert event.invoker is None
        else:
            assert event.invoker is not None
            assert event.invoker.name == expected["invoker"]["name"]
            assert event.invoker.gfp_mask == expected["invoker"]["gfp_mask"]
            assert event.invoker.order == expected["invoker"]["order"]
            assert event.invoker.oom_score_adj == expected["invoker"]["oom_score_adj"]
    if "units" in expected:
        assert list(event.units) == expected["units"]


def test_corpus_is_large_enough_and_documented() -> None:
    positives = [name for name in SAMPLES if not _load(name)[1].get("negative")]
    assert len(positives) >= 20
    assert len(SAMPLES) - len(positives) >= 5
    for name in SAMPLES:
        expected = _load(name)[1]
        assert expected["source"].startswith("https://"), name
        assert expected["format"], name


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_parses_to_expected_fields(name: str) -> None:
    lines, expected = _load(name)
    report = build_report(parse_kernel_log(lines), settings=Settings(), source=name)
    assert [(e.victim.name, e.victim.pid) for e in report.events] == [
        (e["victim"]["name"], e["victim"]["pid"]) for e in expected["events"]
    ]
    for event, wanted in zip(report.events, expected["events"], strict=True):
        _check_event(event, wanted)
    assert [(u.unit, u.result) for u in report.units] == [
        (u["unit"], u["result"]) for u in expected["units"]
    ]
    if "total_ram_kb" in expected:
        assert report.total_ram_kb == expected["total_ram_kb"]
    if not expected["events"]:
        assert report.verdict == "no OOM kill found."


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_read_twice_gives_the_same_events(name: str) -> None:
    # kern.log and syslog hold the same kernel lines; an operator may cat both.
    lines, expected = _load(name)
    report = build_report(parse_kernel_log(lines + lines), settings=Settings(), source=name)
    assert len(report.events) == len(expected["events"])

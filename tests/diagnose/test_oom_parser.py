"""The parser on its own: prefixes, interleaving, repeats, verdicts, constant memory."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from vmkeeper.diagnose.kernel_time import split_prefix
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.diagnose.oom_parser import parse_kernel_log
from vmkeeper.diagnose.oom_verdict import build_report, verdict_for
from vmkeeper.settings import Settings

KILL = (
    "Out of memory: Killed process 4242 (ffmpeg) total-vm:3612345kB, anon-rss:3456000kB, "
    "file-rss:4096kB, shmem-rss:0kB, UID:1000 pgtables:7000kB oom_score_adj:0"
)
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def _report(lines: Iterable[str], **options: Any) -> OomReport:
    return build_report(parse_kernel_log(lines, now=NOW), settings=Settings(), source="t",
                        **options)


@pytest.mark.parametrize(
    ("line", "time", "iso"),
    [
        (f"Jun 12 03:14:15 vm kernel: {KILL}", "Jun 12 03:14:15", None),
        (f"Jun 12 03:14:15.123456 vm kernel: {KILL}", "Jun 12 03:14:15.123456", None),
        (f"2026-06-12T03:14:15+0200 vm kernel: {KILL}", "2026-06-12T03:14:15+0200",
         "2026-06-12T03:14:15+02:00"),
        (f"2026-06-12T03:14:15.123456+02:00 vm kernel: {KILL}",
         "2026-06-12T03:14:15.123456+02:00", "2026-06-12T03:14:15.123456+02:00"),
        # RFC 5424 as rsyslog forwards it: <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG
        (f"<3>1 2026-06-12T03:14:15.5Z vm kernel - - - {KILL}", "2026-06-12T03:14:15.5Z",
         "2026-06-12T03:14:15.500000+00:00"),
        (f"[12345.678901] {KILL}", "12345.678901", None),
        (f"<3>[12345.678901] {KILL}", "12345.678901", None),
        (f"[Fri Jun 12 03:14:15 2026] {KILL}", "Fri Jun 12 03:14:15 2026", None),
        (f"Jun 12 03:14:15 vm kernel: [12345.678901] {KILL}", "Jun 12 03:14:15", None),
        (KILL, None, None),
    ],
)
def test_every_prefix_yields_the_message_and_its_time(line: str, time: str | None,
                                                      iso: str | None) -> None:
    stamp, message = split_prefix(line, NOW)
    assert message == KILL
    assert stamp.text == time
    if iso is not None:
        assert stamp.when is not None and stamp.when.isoformat() == iso
    events = _report([line]).events
    assert len(events) == 1
    assert events[0].victim.anon_rss_kb == 3456000
    assert events[0].time == time


def _event(pid: int, name: str, second: int) -> list[str]:
    prefix = f"Jun 12 03:14:{second:02d} vm kernel: "
    return [
        prefix + f"{name} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        prefix + "12345 pages RAM",
        prefix + "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,"
        f"global_oom,task_memcg=/system.slice/pm2-ubuntu.service,task={name},pid={pid},uid=1000",
        prefix + f"Out of memory: Killed process {pid} ({name}) total-vm:1000kB, anon-rss:{pid}kB, "
        "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:12kB oom_score_adj:0",
        prefix + f"oom_reaper: reaped process {pid} ({name}), now anon-rss:0kB, file-rss:0kB, "
        "shmem-rss:0kB",
    ]


def test_interleaved_events_stay_apart() -> None:
    first, second = _event(101, "ffmpeg", 1), _event(202, "node", 2)
    mixed = [line for pair in zip(first, second, strict=True) for line in pair]
    events = _report(mixed).events
    assert [(e.victim.name, e.victim.pid, e.victim.anon_rss_kb) for e in events] == [
        ("ffmpeg", 101, 101), ("node", 202, 202)
    ]
    assert all(e.reaped for e in events)
    assert [e.invoker.name if e.invoker else None for e in events] == ["ffmpeg", "node"]


def test_repeated_lines_do_not_duplicate_events() -> None:
    lines = _event(101, "ffmpeg", 1)
    doubled = [line for line in lines for _ in range(2)]
    events = _report(doubled).events
    assert len(events) == 1
    assert events[0].victim.pid == 101


def test_same_pid_killed_again_later_is_a_second_event() -> None:
    lines = _event(101, "node", 1) + _event(101, "node", 40)
    events = _report(lines).events
    assert [e.time for e in events] == ["Jun 12 03:14:01", "Jun 12 03:14:40"]


def test_reaper_line_merges_into_its_kill() -> None:
    lines = [KILL, "oom_reaper: reaped process 4242 (ffmpeg), now anon-rss:0kB, file-rss:0kB"]
    events = _report(lines).events
    assert len(events) == 1
    assert events[0].reaped is True
    assert events[0].victim.anon_rss_kb == 3456000  # not the reaper's "now" zeros


def test_runbook_incident_verdict_names_the_unit_the_ram_and_the_feature() -> None:
    pages = 3_984_588 // 4  # 3.8 GiB VM
    lines = [
        "Jun 12 03:14:15 vm kernel: node invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE"
        "|__GFP_COMP), order=0, oom_score_adj=0",
        f"Jun 12 03:14:15 vm kernel: {pages} pages RAM",
        f"Jun 12 03:14:15 vm kernel: {KILL}",
        "Jun 12 03:14:16 vm systemd[1]: pm2-ubuntu.service: A process of this unit has been killed "
        "by the OOM killer.",
        "Jun 12 03:14:16 vm systemd[1]: pm2-ubuntu.service: Failed with result 'oom-kill'.",
    ]
    report = _report(lines)
    (event,) = report.events
    assert event.units == ("pm2-ubuntu.service",)
    assert event.verdict == (
        "ffmpeg (pid 4242) killed at Jun 12 03:14:15 holding 3.3 GiB RSS of 3.8 GiB RAM; "
        "pm2-ubuntu.service failed with result oom-kill, taking its apps down. ffmpeg is "
        "vmkeeper's video reversal: see the media settings (media.*)."
    )
    assert [u.result for u in report.units] == ["process-killed", "failed-oom-kill"]


def test_node_victim_is_attributed_to_its_pm2_app_when_the_pid_is_known() -> None:
    report = _report([KILL.replace("ffmpeg", "node")], app_by_pid={4242: "backend-dev"})
    assert report.events[0].verdict.endswith("node was the PM2 app backend-dev.")
    unknown = _report([KILL.replace("ffmpeg", "node")])
    assert "frontend-dev, backend-dev, fl-telemetry, fl-executor" in unknown.events[0].verdict


def test_local_ram_is_used_when_the_log_has_no_mem_info() -> None:
    events = _report([KILL]).events
    text = verdict_for(events[0], Settings(), {}, local_ram_kb=4 * 1024 * 1024)
    assert "holding 3.3 GiB RSS of 4.0 GiB RAM" in text


def test_since_until_filter_events_with_known_times() -> None:
    lines = [f"2026-06-12T03:00:00+00:00 vm kernel: {KILL}",
             f"2026-06-12T05:00:00+00:00 vm kernel: {KILL.replace('4242', '4343')}"]
    report = _report(lines, since=datetime(2026, 6, 12, 4, tzinfo=UTC))
    assert [e.victim.pid for e in report.events] == [4343]


def _noise_with_kills(lines: int) -> Iterator[str]:
    noise = "Jun 12 03:14:15 vm kernel: [ 1234.567890] eth0: link up, 1000Mbps, full-duplex\n"
    for index in range(lines):
        if index % 5000 == 0:
            yield f"Jun 12 03:14:15 vm kernel: {KILL.replace('4242', str(index % 30000 + 1))}\n"
        else:
            yield noise


def _peak_while_scanning(lines: int) -> int:
    tracemalloc.start()
    try:
        parse_kernel_log(_noise_with_kills(lines), now=NOW)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_parser_memory_does_not_grow_with_log_size() -> None:
    # Twenty times the lines (and kills) must not need more than a little more memory: only the
    # events themselves grow, and 40 of them are a few kB.
    small = _peak_while_scanning(10_000)
    large = _peak_while_scanning(200_000)
    assert large < small + 64 * 1024


def test_event_list_is_bounded_on_a_kill_storm() -> None:
    lines = (KILL.replace("4242", str(pid)) for pid in itertools.islice(itertools.count(1), 50))
    parsed = parse_kernel_log(lines, now=NOW, max_events=10)
    report = build_report(parsed, settings=Settings(), source="t")
    assert len(report.events) == 10
    assert report.events_dropped == 40


def test_selection_without_its_kill_line_is_not_merged_into_a_later_kill() -> None:
    lines = [
        "Dec 1 15:01:07 cluster1 kernel: Out of memory: Kill process 7963 (sge_qmaster) score 948 "
        "or sacrifice child",
        f"Dec 3 09:00:00 cluster1 kernel: {KILL}",
    ]
    events = _report(lines).events
    assert [(e.victim.pid, e.score) for e in events] == [(7963, 948), (4242, None)]


def test_sacrificed_child_takes_the_parents_selection() -> None:
    lines = [
        "[  10.000001] Out of memory: Kill process 100 (bash) score 900 or sacrifice child",
        "[  10.000002] Killed process 101 (ffmpeg) total-vm:2000kB, anon-rss:1000kB, file-rss:0kB",
    ]
    events = _report(lines).events
    assert [(e.victim.name, e.victim.pid, e.score) for e in events] == [("ffmpeg", 101, 900)]

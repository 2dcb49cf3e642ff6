"""The kernel-log parser on hostile input: linear time, no exception, whatever the bytes.

Before RE2, `Killed process 1 (` repeated over a 40 KB line took 1.5 s (26 such lines, 40 s) and
a unit name made of one long run of letters grew as the square of its length; a 1 MB line of
either would have taken minutes. Times are CPU seconds of this process, so a busy machine does
not make them flaky.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmkeeper.diagnose.kernel_time import parse_time_bound
from vmkeeper.diagnose.oom_parser import parse_kernel_log
from vmkeeper.errors import UsageError

MB = 1 << 20
NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)
PREFIX = "Jun 12 03:14:15 vm kernel: "

# Each one megabyte, each shaped to make a backtracking engine retry from every position.
HOSTILE = {
    "killed process, repeated": "Killed process 1 (" * (MB // 18),
    "killed process, name never closed": "Killed process 1 (" + "a" * MB,
    "killed process, a close paren every few bytes": "Killed process 1 (" + "a) " * (MB // 3),
    "reaper, repeated": "oom_reaper: reaped process 1 (" * (MB // 30),
    "invoker, repeated": "x invoked oom-killer: gfp_mask=0x1(" * (MB // 35),
    "selection, repeated": "Out of memory: Kill process 1 (a) score 1 " * (MB // 42)
    + "or sacrifice child",
    "unit name, one run of letters": "a" * MB + ": A process of this unit has been killed by the "
    "OOM killer.",
    "victim fields without values": "Killed process 1 (a) " + "total-vm: " * (MB // 10),
    "constraint, a comma every other byte": "oom-kill:constraint=CONSTRAINT_NONE,"
    + "a," * (MB // 2),
    "task in, one long path": "Task in " + "/a" * (MB // 2) + " killed as a result of limit of",
    "syslog header, brackets never closed": PREFIX.replace("kernel:", "h") + " [" * (MB // 2)
    + "Killed process",
    "digits, far too many": "Killed process " + "9" * MB + " (a) total-vm:" + "9" * 5000 + "kB",
    "uptime, far too many digits": "[" + "1" * MB + ".5] Killed process 1 (a)",
}


@pytest.mark.parametrize("line", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_megabyte_hostile_line_parses_in_well_under_a_second(line: str) -> None:
    data = (PREFIX + line + "\n").encode()
    started = time.process_time()
    parse_kernel_log(data, now=NOW)
    assert time.process_time() - started < 0.5


def test_time_grows_linearly_with_the_line() -> None:
    # Ten times the input may cost at most ~20 times the time (noise), never a hundred.
    line = "Killed process 1 (" * 6000

    def cost(text: str) -> float:
        started = time.process_time()
        for _ in range(3):
            parse_kernel_log([text], now=NOW)
        return time.process_time() - started

    small, large = cost(line), cost(line * 10)
    assert large < 20 * max(small, 0.002)


def test_a_line_of_absurd_numbers_is_skipped_not_a_crash() -> None:
    parsed = parse_kernel_log(["Killed process " + "9" * 5000 + " (a) total-vm:1kB"], now=NOW)
    assert parsed.events == ()
    parsed = parse_kernel_log(["Killed process 7 (a) total-vm:" + "9" * 5000 + "kB"], now=NOW)
    assert [(e.victim.pid, e.victim.total_vm_kb) for e in parsed.events] == [(7, None)]


def test_a_relative_time_too_far_back_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="before the year 1"):
        parse_time_bound("-999999999d", NOW)


_WORDS = st.sampled_from([
    "Killed process ", "Out of memory: ", "oom-kill:constraint=CONSTRAINT_MEMCG,", "task=",
    ",pid=", "(", ")", " ", ",", "=", "1", "-", "invoked oom-killer: gfp_mask=0x", "pages RAM",
    "oom_reaper: reaped process ", " score ", " or sacrifice child", ".service: ",
    "Failed with result 'oom-kill'.", "[ 12.5] ", "Jun 12 03:14:15 vm kernel: ", "\n", "\ud800",
    "é", "total-vm:", "kB", "UID:", "Task in ", " killed as a result of limit of ",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=30).map("".join), max_size=20))
def test_any_lines_of_kernel_words_parse_without_raising(lines: list[str]) -> None:
    parsed = parse_kernel_log(lines, now=NOW)
    assert parsed.lines_read == len(lines)
    assert len(parsed.event_times) == len(parsed.events)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_raising(data: bytes) -> None:
    parsed = parse_kernel_log(data, now=NOW)
    assert parsed.lines_read == data.count(b"\n") + (not data.endswith(b"\n") and bool(data))

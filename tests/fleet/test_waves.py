"""Wave planning and the halt rule (reached, not exceeded)."""

from __future__ import annotations

import pytest

from vmkeeper.errors import UsageError
from vmkeeper.fleet.waves import halt_limit, parse_sizes, plan_waves, should_halt

HOSTS = [f"h{i}" for i in range(1, 11)]


def test_canary_then_percentages_then_the_rest() -> None:
    assert plan_waves(HOSTS, [1, "25%", "100%"]) == [
        ["h1"], ["h2", "h3", "h4"], ["h5", "h6", "h7", "h8", "h9", "h10"]]


def test_the_last_size_repeats_until_every_host_has_a_wave() -> None:
    waves = plan_waves(HOSTS[:7], [1, 2])
    assert waves == [["h1"], ["h2", "h3"], ["h4", "h5"], ["h6", "h7"]]
    assert [h for wave in waves for h in wave] == HOSTS[:7]


def test_a_percentage_of_few_hosts_is_at_least_one() -> None:
    assert plan_waves(HOSTS[:2], ["10%"]) == [["h1"], ["h2"]]


@pytest.mark.parametrize("bad", [0, "0%", "150%", "abc", -1])
def test_a_bad_size_is_one_clear_error(bad: int | str) -> None:
    with pytest.raises(UsageError, match=r"fleet\.waves or --waves"):
        plan_waves(HOSTS, [bad])


def test_halt_when_the_threshold_is_reached_not_only_when_exceeded() -> None:
    assert not should_halt(0, 1, 4)
    assert should_halt(1, 1, 4)  # Ansible's max_fail_percentage would need 2 here
    assert not should_halt(1, "50%", 4)
    assert should_halt(2, "50%", 4)
    assert halt_limit("25%", 10) == 3


def test_waves_flag_parses() -> None:
    assert parse_sizes("1, 25%,100%") == ["1", "25%", "100%"]
    assert plan_waves(HOSTS[:4], parse_sizes("1,25%,100%")) == [["h1"], ["h2"], ["h3", "h4"]]

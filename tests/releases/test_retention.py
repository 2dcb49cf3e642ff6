"""The retention rule, by example and as a property over random deploy/rollback histories."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from vmkeeper.releases.retention import Candidate, plan_leftovers, plan_prune
from vmkeeper.releases.store import ReleaseState

GOOD, FAILED, BUILT, BUILDING, UNKNOWN = (
    ReleaseState.GOOD, ReleaseState.FAILED, ReleaseState.BUILT, ReleaseState.BUILDING,
    ReleaseState.UNKNOWN,
)


def rid(n: int) -> str:
    return f"2026010{n // 10 % 10}T0000{n % 10}0Z-{n:012x}"


def test_prune_keeps_newest_good_and_drops_failed_ones() -> None:
    releases = [Candidate(rid(5), GOOD), Candidate(rid(4), FAILED), Candidate(rid(3), GOOD),
                Candidate(rid(2), GOOD), Candidate(rid(1), BUILDING)]
    assert plan_prune(releases, 2, frozenset({rid(5)})) == [rid(4), rid(2), rid(1)]


def test_failed_releases_never_push_out_the_last_good_one() -> None:
    # Three failed deploys after one good one: the good one stays, whatever keep says.
    releases = [Candidate(rid(4), FAILED), Candidate(rid(3), FAILED), Candidate(rid(2), FAILED),
                Candidate(rid(1), GOOD)]
    assert plan_prune(releases, 1, frozenset({rid(1)})) == [rid(4), rid(3), rid(2)]


def test_active_older_release_is_kept_beside_the_newest_good() -> None:
    releases = [Candidate(rid(3), GOOD), Candidate(rid(2), GOOD), Candidate(rid(1), GOOD)]
    assert plan_prune(releases, 1, frozenset({rid(1)})) == [rid(2)]


def test_unrecorded_releases_with_a_build_count_as_good() -> None:
    releases = [Candidate(rid(3), GOOD), Candidate(rid(2), UNKNOWN), Candidate(rid(1), UNKNOWN)]
    assert plan_prune(releases, 2, frozenset({rid(3)})) == [rid(1)]


def test_leftovers_are_the_never_good_ones_not_live() -> None:
    releases = [Candidate(rid(3), BUILT), Candidate(rid(2), BUILDING), Candidate(rid(1), GOOD)]
    assert plan_leftovers(releases, frozenset({rid(3)})) == [rid(2)]


# --- the property: a model of the VM, driven by random operations ---------------------------

@dataclass
class Vm:
    keep: int
    releases: dict[str, ReleaseState] = field(default_factory=dict)
    active: str | None = None
    last_good: str | None = None
    clock: int = 0

    def candidates(self) -> list[Candidate]:
        return [Candidate(i, s) for i, s in self.releases.items()]

    def deploy(self, outcome: str) -> None:
        self.clock += 1
        new = rid(self.clock)
        protected = frozenset({self.active} if self.active else set())
        # What a deploy does first: clear leftovers of killed or failed runs.
        for leftover in plan_leftovers(self.candidates(), protected):
            del self.releases[leftover]
        self.releases[new] = BUILDING
        if outcome == "killed_building":
            return
        if outcome == "build_fails":
            del self.releases[new]
            return
        self.releases[new] = BUILT
        if outcome == "killed_built":
            return
        if outcome == "never_ready":
            self.releases[new] = FAILED  # reverted to the previous; the directory is removed
            del self.releases[new]
            return
        self.releases[new] = GOOD
        self.active = self.last_good = new
        if outcome == "killed_after_switch":
            return  # no save, no prune
        for gone in plan_prune(self.candidates(), self.keep, frozenset({new})):
            del self.releases[gone]

    def rollback(self, pick: int) -> None:
        good = sorted((i for i, s in self.releases.items() if s is GOOD), reverse=True)
        if good:
            self.active = good[pick % len(good)]

    def check(self) -> None:
        if self.active:
            assert self.active in self.releases, "the active release was removed"
        if self.last_good:
            assert self.last_good in self.releases, "the last good release was removed"
        # Good releases may pile up while deploys are killed after their switch (pruning runs
        # only after a complete, healthy deploy); the bound is checked after those below.


OUTCOMES = st.sampled_from(
    ["ok", "ok", "ok", "build_fails", "never_ready", "killed_building", "killed_built",
     "killed_after_switch"]
)
OPERATIONS = st.lists(
    st.one_of(st.tuples(st.just("deploy"), OUTCOMES),
              st.tuples(st.just("rollback"), st.integers(0, 5))),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(keep=st.integers(1, 4), operations=OPERATIONS)
def test_retention_never_loses_the_active_or_last_good_release(
    keep: int, operations: list[tuple[str, object]]
) -> None:
    vm = Vm(keep)
    for kind, argument in operations:
        if kind == "deploy":
            vm.deploy(str(argument))
        else:
            vm.rollback(int(str(argument)))
        vm.check()
        # After every successful, unkilled deploy exactly the rule holds: at most keep good.
        if kind == "deploy" and argument == "ok":
            good = [i for i, s in vm.releases.items() if s is GOOD]
            assert len(good) <= keep

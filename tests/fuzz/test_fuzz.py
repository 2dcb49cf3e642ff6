"""Fuzzing: every kept crashing input replayed (fast), every target fuzzed for a while (slow)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS
from vmkeeper import proc

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0] / "data"
SEEDS = {
    "redactor": [*sorted((DATA / "pm2").glob("*.json")),
                 *sorted((DATA / "kernel").glob("*.log"))[:3]],
    "kernel_log": sorted((DATA / "kernel").glob("*.log")),
    "pm2_output": sorted((DATA / "pm2").glob("*.json")),
    "settings_file": [],
}
SECONDS = 8


def _kept() -> list[tuple[str, Path]]:
    return [(name, path) for name in TARGETS
            for path in sorted((HERE / "crashes" / name).glob("*")) if path.is_file()]


@pytest.mark.parametrize(("name", "path"), _kept(), ids=lambda v: getattr(v, "name", v))
def test_a_kept_crashing_input_no_longer_crashes(name: str, path: Path) -> None:
    TARGETS[name](path.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_few_seconds_of_fuzzing_find_no_crash(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in SEEDS[name]:
        shutil.copy(seed, corpus / seed.name)
    (corpus / "seed").write_bytes(b'[{"pm2_env":{"env":{"DB_PASSWORD":"x1y2z3"}}}]')
    result = proc.run(
        [sys.executable, str(HERE / "run_fuzz.py"), name, f"-max_total_time={SECONDS}",
         "-max_len=65536", "-rss_limit_mb=2048", "-timeout=20", f"-artifact_prefix={tmp_path}/",
         str(corpus)],
        timeout=SECONDS * 6 + 60, check=False, cwd=HERE.parents[1],
    )
    found = ("crash-", "timeout-", "oom-")
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(found)]
    assert result.returncode == 0 and not crashes, \
        f"{name}: {crashes} (keep each in tests/fuzz/crashes/{name}/)\n{result.stderr[-3000:]}"

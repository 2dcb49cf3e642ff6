"""Run one fuzz target under atheris (coverage-guided, libFuzzer's options after the name).

    python tests/fuzz/run_fuzz.py redactor -max_total_time=60 -artifact_prefix=/tmp/crash- DIR

A crashing input is written where `-artifact_prefix` says; keep it in tests/fuzz/crashes/<target>/
so that test_fuzz.py replays it for ever.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    import atheris

    name = sys.argv.pop(1)
    # Coverage for vmkeeper's own code only: instrumenting pydantic and the rest costs a
    # minute of start-up and guides nothing.
    with atheris.instrument_imports(include=["vmkeeper"]):
        from tests.fuzz.targets import TARGETS

        target = TARGETS[name]
        target(b"warm up: import what the target imports, instrumented")
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

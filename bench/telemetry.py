"""Benchmark: what telemetry costs an operation, and how fast a span reaches the collector.

Baseline: the same thing with ``telemetry.enabled=false``; ratio = with ÷ without.

- ``vmkeeper health --json`` (a fresh process each run: importing the SDK, setting up, the
  checks' commands as spans, the flush at exit) against a collector that answers, one that is
  down (connection refused) and one that accepts and never answers.
- a deploy in the fast tier's fake world (real git, archive, build command; fake PM2 and site),
  each mode in a fresh process: the operation's spans, its steps and commands, and the flush.
- ``proc.run(["true"])`` in-process: the per-command cost of a span.
- export latency: a span ended → its body stored by the collector (``flush``), median.
- the watcher's cycle in-process (health's look, the textfile with the families, the export
  handed to the background) with the collector answering, down and silent: an export must
  never lengthen a cycle.
- RSS of a process after ten such cycles (what the watcher holds; the agent holds the same
  SDK), telemetry off and on.

The collector is fl-telemetry's receiver (:mod:`vmkeeper.telemetry.receiver`) in-process.

    python bench/telemetry.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import otlp
from vmkeeper import proc, telemetry
from vmkeeper.settings import Settings


def _cli(flags: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "vmkeeper", *flags, "health", "--json"],
                       capture_output=True, timeout=120, check=False)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def _commands(settings: Settings | None, count: int = 200) -> float:
    if settings is not None:
        telemetry.setup(settings, "bench")
    started = time.monotonic()
    for _ in range(count):
        proc.run(["true"], timeout=5)
    seconds = (time.monotonic() - started) / count
    telemetry.shutdown(2)
    return seconds


def _latency(url: str, received: otlp.Received, count: int = 20) -> float:
    handle = telemetry.setup(Settings.model_validate({"telemetry": {"otlp_endpoint": url}}), "b")
    assert handle is not None
    samples = []
    for n in range(count):
        before = len(received.spans())
        started = time.monotonic()
        with telemetry.span(f"latency {n}"):
            pass
        handle.flush(2)
        if len(received.spans()) > before:
            samples.append(time.monotonic() - started)
    telemetry.shutdown(2)
    return statistics.median(samples)


_CYCLES = """
import sys, time
import psutil
from pathlib import Path
from vmkeeper import telemetry
from vmkeeper.health.service import run_health
from vmkeeper.settings import Settings
from vmkeeper.watch.textfile import write_textfile
endpoint, folder, cycles = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
settings = Settings.model_validate({
    "state_dir": str(folder / "state"), "watch": {"textfile": str(folder / "vmkeeper.prom")},
    "telemetry": {"enabled": endpoint != "off", "otlp_endpoint":
                  endpoint if endpoint != "off" else "http://127.0.0.1:9"}})
telemetry.start(settings, "vmkeeper-watch")
times = []
for _ in range(cycles):
    started = time.monotonic()
    report = run_health(settings, remember=False)
    write_textfile(settings, report, time.time())
    telemetry.export_soon()
    times.append(time.monotonic() - started)
times.sort()
loaded = sum(1 for name in sys.modules if name.startswith("opentelemetry"))
assert (endpoint == "off") == (loaded == 0), loaded
print(times[len(times) // 2], psutil.Process().memory_info().rss)
"""


_DEPLOYS = """
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from tests.fakes.world import FakeVm, commit
from vmkeeper import telemetry
from vmkeeper.progress import silent
from vmkeeper.releases import deploy
endpoint, runs = sys.argv[1], int(sys.argv[2])
vm = FakeVm.ready_to_deploy(Path(tempfile.mkdtemp(prefix="bench-tel-deploy-")))
vm.settings = vm.settings.model_copy(update={"telemetry": vm.settings.telemetry.model_copy(
    update={"enabled": endpoint != "off", "otlp_endpoint":
            endpoint if endpoint != "off" else "http://127.0.0.1:9"})})
times = []
for n in range(runs + 1):  # the first deploy (no previous release) is not timed
    commit(vm.settings.workspace.path, f"change {n}", {"page.txt": str(n)})
    started = time.monotonic()
    with telemetry.operation(vm.settings, "deploy") as handle:  # what cli/deploy.py does
        result = deploy.deploy(vm.settings, switcher=vm.switcher(),
                               progress=telemetry.steps(silent))
        if handle is not None:
            handle.record_result("deploy", result)
    assert result.ok, result.error
    if n:
        times.append(time.monotonic() - started)
times.sort()
print(times[len(times) // 2])
"""


def _deploys(endpoint: str, runs: int) -> float:
    """Median seconds of a deploy in the fast tier's fake world (real git, archive and build
    command; a fake PM2 and site), each mode in a fresh process (one telemetry per process)."""
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _DEPLOYS, endpoint, str(runs), root],
                         capture_output=True, text=True, timeout=900, check=True).stdout
    return float(out.split()[-1])


def _cycles(endpoint: str, cycles: int = 10) -> tuple[float, int]:
    """Median seconds of one watcher cycle, and the process's RSS after them (bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run([sys.executable, "-c", _CYCLES, endpoint, folder, str(cycles)],
                             capture_output=True, text=True, timeout=600, check=True).stdout
    median, rss = out.split()
    return float(median), int(rss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    answering = otlp.serve()
    url, received = next(answering)
    silent = otlp.serve("hang")
    silent_url, _ = next(silent)
    off = _cli(["--set", "telemetry.enabled=false"], runs)
    rows = [("health, telemetry off (baseline)", off, 1.0)]
    for label, endpoint in (("collector answering", url), ("collector down", "http://127.0.0.1:9"),
                            ("collector never answers", silent_url)):
        seconds = _cli(["--set", f"telemetry.otlp_endpoint={endpoint}"], runs)
        rows.append((f"health, {label}", seconds, seconds / off))
    deploy_off = _deploys("off", runs)
    rows.append(("deploy (fake world), telemetry off (baseline)", deploy_off, 1.0))
    for label, endpoint in (("collector answering", url), ("collector down", "http://127.0.0.1:9"),
                            ("collector never answers", silent_url)):
        seconds = _deploys(endpoint, runs)
        rows.append((f"deploy (fake world), {label}", seconds, seconds / deploy_off))
    settings = Settings.model_validate({"telemetry": {"otlp_endpoint": url}})
    _commands(None, 50)  # warm: the first fork and imports are not the span's cost
    plain = _commands(None)
    traced = _commands(settings)
    rows.append(("proc.run(['true']), off (baseline)", plain, 1.0))
    rows.append(("proc.run(['true']), a span each", traced, traced / plain))
    latency = _latency(url, received)
    cycle_off, rss_off = _cycles("off")
    rows.append(("watcher cycle, telemetry off (baseline)", cycle_off, 1.0))
    rss_rows = [("RSS after 10 cycles, telemetry off (baseline)", rss_off, 1.0)]
    for label, endpoint in (("collector answering", url), ("collector down", "http://127.0.0.1:9"),
                            ("collector never answers", silent_url)):
        cycle, rss = _cycles(endpoint)
        rows.append((f"watcher cycle, {label}", cycle, cycle / cycle_off))
        if endpoint == url:
            rss_rows.append(("RSS after 10 cycles, telemetry on", rss, rss / rss_off))
    print(f"{'what':44} {'median s':>10} {'ratio':>7}")
    for label, seconds, ratio in rows:
        print(f"{label:44} {seconds:10.4f} {ratio:7.2f}")
    print(f"{'export latency (span end → stored)':44} {latency:10.4f} {'':>7}")
    for label, size, ratio in rss_rows:
        print(f"{label:44} {size / 2**20:8.1f} MiB {ratio:5.2f}")
    answering.close()
    silent.close()


if __name__ == "__main__":
    main()

"""The `vmkeeper media reverse` program: checks in the CLI, then the stdlib-only supervisor.

These run the installed ``vmkeeper`` script as a child, so the CLI really replaces itself with
``media/supervisor.py`` (in-process ``main()`` calls run the same supervisor without exec).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.media.conftest import Clips
from tests.media.helpers import run
from tests.support.waiting import wait_for
from vmkeeper.jsonable import to_jsonable
from vmkeeper.media.child import WORKER_MODULE as WORKER
from vmkeeper.media.clips import Clip, make_clip
from vmkeeper.media.job import ReverseStats
from vmkeeper.media.service import ReverseResult
from vmkeeper.media.supervisor import report
from vmkeeper.settings import MediaSettings

pytestmark = pytest.mark.slow

VMKEEPER = str(Path(sys.executable).with_name("vmkeeper"))
MiB = 2**20


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Long enough that the worker runs for a few seconds on a busy VM.
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4",
                     Clip(size="1280x720", seconds=20, gop=60))


def _start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    private = tmp_path / "tmp"
    private.mkdir(exist_ok=True)
    return subprocess.Popen([VMKEEPER, "media", "reverse", *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(private), **env})


def _processes_mentioning(text: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(text in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def _reversing(parent: psutil.Process) -> bool:
    """Whether ``parent`` (the CLI, exec'd into the supervisor) has a worker reversing: the
    worker the CLI started to probe (``serve``) once it has the job (its stderr is then the
    job's worker.log) and the CLI has become the supervisor."""
    try:
        if "vmkeeper.media.supervisor" not in parent.cmdline():
            return False
        return any(process.cmdline()[3:5] == [WORKER, "serve"]
                   and any(f.path.endswith("/worker.log") for f in process.open_files())
                   for process in parent.children())
    except psutil.Error:
        return False


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__ if value is not None else None


def test_cli_json_has_the_service_results_shape_and_one_log_record(clips: Clips,
                                                                   tmp_path: Path) -> None:
    child = _start(tmp_path, str(clips.basic), str(tmp_path / "out.mp4"), "--json")
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    printed = json.loads(stdout)  # one object, nothing else on stdout
    fields = list(ReverseResult._fields)
    assert list(printed) == fields
    assert list(printed["stats"]) == list(ReverseStats._fields)
    assert printed["ok"] is True and printed["error"] is None
    assert printed["output"] == str(tmp_path / "out.mp4") and printed["seconds"] > 0
    # The same shape as the in-process service's result, nested keys and types included.
    direct = to_jsonable(run(MediaSettings(), clips.basic, tmp_path / "direct.mp4"))
    direct["output"] = printed["output"]
    assert _shape(printed) == _shape(direct)
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(records) == 1
    record = records[0]
    assert record["event"] == "media.reverse" and record["level"] == "info" and record["ok"]
    for key in ("input_size_bytes", "output_size_bytes", "input", "pieces", "seconds",
                "peak_memory_bytes", "worker_peak_rss_bytes", "timestamp"):
        assert key in record
    assert sorted(os.listdir(tmp_path / "tmp")) == []


@pytest.mark.parametrize(("frames", "pieces", "line"), [
    (1, 1, "out.mp4: 1 frame reversed in 0.5 s (1 piece)\n"),
    (120, 2, "out.mp4: 120 frames reversed in 0.5 s (2 pieces)\n"),
])
def test_the_human_line_counts_in_the_singular_when_one(frames: int, pieces: int, line: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    stats = ReverseStats(frames, pieces, frames, frames, 1.0, 0, frames, 1.0, 0, 0)
    assert report(ReverseResult(True, "out.mp4", {}, 0.5, None, stats=stats), False) == 0
    assert capsys.readouterr().out == line


def test_cli_human_output_and_exit_codes(clips: Clips, tmp_path: Path) -> None:
    child = _start(tmp_path, str(clips.tiny), str(tmp_path / "out.mp4"))
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert stdout.startswith(f"{tmp_path / 'out.mp4'}: 15 frames reversed in ")
    assert "reversed 15 of 15 frames (100%)" in stderr
    # Human output only (what `make demo` shows): the JSON record only when asked for.
    assert not [line for line in stderr.splitlines() if line.startswith("{")], stderr
    asked = _start(tmp_path, str(clips.tiny), str(tmp_path / "out2.mp4"),
                   VMKEEPER_LOG_FORMAT="json")
    _stdout, stderr = asked.communicate(timeout=120)
    assert asked.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [record["event"] for record in records] == ["media.reverse"]
    refused = _start(tmp_path, str(clips.audio_only), str(tmp_path / "no.mp4"))
    stdout, stderr = refused.communicate(timeout=120)
    assert refused.returncode == 1 and stdout == ""
    assert "error:" in stderr and "no video stream" in stderr
    assert _processes_mentioning(str(tmp_path / "no.mp4")) == []  # its probing worker stopped


def test_a_usage_error_after_the_early_start_leaves_no_worker(clips: Clips,
                                                             tmp_path: Path) -> None:
    # The program's entry starts the worker for `media reverse SRC DST` before typer parses
    # the line; typer then refuses the unknown option, and the entry stops the worker.
    dst = tmp_path / "early" / "out.mp4"
    dst.parent.mkdir()
    child = _start(tmp_path, str(clips.tiny), str(dst), "--no-such-option")
    _stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 2 and "--no-such-option" in stderr, stderr
    assert _processes_mentioning(str(dst.parent)) == []
    assert os.listdir(dst.parent) == []


def test_an_unusable_temp_folder_is_one_sentence_and_leaves_nothing(clips: Clips,
                                                                    tmp_path: Path) -> None:
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()
    child = _start(tmp_path, str(clips.tiny), str(dst), "--json",
                   TMPDIR=str(tmp_path / "missing"))
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr
    result = json.loads(stdout)
    assert result["ok"] is False and str(tmp_path / "missing") in result["error"], result
    assert "Traceback" not in stderr
    assert _processes_mentioning(str(dst.parent)) == [] and os.listdir(dst.parent) == []


def test_a_failed_or_timed_out_probe_in_the_cli_stops_its_worker(clips: Clips,
                                                                 tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video, " * 1000)
    child = _start(tmp_path, str(garbage), str(tmp_path / "garbage-out.mp4"), "--json")
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr
    result = json.loads(stdout)
    assert result["rejected"] is True and "is not readable media" in result["error"], result
    assert _processes_mentioning(str(tmp_path / "garbage-out.mp4")) == []
    slow = _start(tmp_path, str(clips.tiny), str(tmp_path / "slow-out.mp4"), "--json",
                  FFPROBE_TIMEOUT_MS="1")
    stdout, stderr = slow.communicate(timeout=120)
    assert slow.returncode == 1, stderr
    result = json.loads(stdout)
    assert result["rejected"] is False and "FFPROBE_TIMEOUT_MS" in result["error"], result
    assert _processes_mentioning(str(tmp_path / "slow-out.mp4")) == []


def test_cli_timeout_leaves_no_process_no_partial_no_temp_dir(long_clip: Path,
                                                              tmp_path: Path) -> None:
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()  # `media reverse` never creates DST's folder
    child = _start(tmp_path, str(long_clip), str(dst), "--json",
                   FFMPEG_REVERSE_TIMEOUT_MS="2000")
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr
    result = json.loads(stdout)
    assert result["ok"] is False and result["rejected"] is False
    assert "FFMPEG_REVERSE_TIMEOUT_MS" in result["error"], result["error"]
    assert _processes_mentioning(str(dst.parent)) == []  # the worker's group was killed
    assert not dst.exists() and os.listdir(dst.parent) == []  # no partial beside DST
    assert os.listdir(tmp_path / "tmp") == []  # the private temp dir is gone


def test_the_process_waiting_for_the_worker_is_small(long_clip: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    child = _start(tmp_path, str(long_clip), str(dst), "--json")
    parent = psutil.Process(child.pid)
    samples: list[int] = []
    worker_seen = False
    while child.poll() is None:
        try:
            if _reversing(parent):
                worker_seen = True
                assert "vmkeeper.media.supervisor" in parent.cmdline()  # the CLI exec'd it
                samples.append(parent.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    stdout, stderr = child.communicate()
    assert child.returncode == 0, stderr
    assert json.loads(stdout)["ok"] is True
    assert worker_seen and len(samples) >= 5
    assert max(samples) < 25 * MiB, f"supervisor peak {max(samples) / MiB:.1f} MiB"


def _start_reversing(tmp_path: Path, clip: Path, dst: Path
                     ) -> tuple[subprocess.Popen[str], psutil.Process, float]:
    """Start `vmkeeper media reverse --json` and return once its reversal worker runs."""
    child = _start(tmp_path, str(clip), str(dst), "--json")
    parent = psutil.Process(child.pid)
    deadline = time.monotonic() + 60
    wait_for(lambda: _reversing(parent) or child.poll() is not None, 60,
             "the reversal worker to start")
    assert child.poll() is None, child.communicate()
    return child, parent, deadline


def test_sigterm_to_the_supervisor_kills_the_worker_and_cleans_up(long_clip: Path,
                                                                  tmp_path: Path) -> None:
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()  # `media reverse` never creates DST's folder
    child, _parent, _deadline = _start_reversing(tmp_path, long_clip, dst)
    child.terminate()
    child.communicate(timeout=60)
    assert child.returncode == 128 + 15
    assert _processes_mentioning(str(dst.parent)) == []
    assert not dst.exists() and os.listdir(dst.parent) == []
    assert os.listdir(tmp_path / "tmp") == []


# The real CLI, with a SIGTERM sent to itself the moment the worker has its job and before the
# exec: the window in which no handler of the supervisor exists yet.
_SIGTERM_AT_HAND_OVER = """
import os, signal, sys
from vmkeeper.media import supervisor
launch = supervisor.launch
def launch_then_sigterm(*args, **kwargs):
    launched = launch(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return launched
supervisor.launch = launch_then_sigterm
from vmkeeper.cli.main import run
run()
"""


def test_a_sigterm_between_the_hand_over_and_the_exec_waits_for_the_clean_up(
        long_clip: Path, tmp_path: Path) -> None:
    # The CLI hands the worker its job, then execs the supervisor: a SIGTERM in between is
    # held (blocked across the exec) until the supervisor can kill the worker and remove the
    # folders; unblocked, it would end the CLI on the spot and leave both behind.
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()
    private = tmp_path / "tmp"
    private.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", _SIGTERM_AT_HAND_OVER, "media", "reverse", str(long_clip),
         str(dst), "--json"], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(private)})
    _stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 128 + 15, stderr
    assert _processes_mentioning(str(dst.parent)) == []
    assert not dst.exists() and os.listdir(dst.parent) == []
    assert os.listdir(private) == []


def test_sigkill_of_the_supervisor_takes_the_worker_with_it(long_clip: Path,
                                                            tmp_path: Path) -> None:
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()  # `media reverse` never creates DST's folder
    child, parent, deadline = _start_reversing(tmp_path, long_clip, dst)
    workers = parent.children(recursive=True)
    assert workers
    # The worker asks for the parent-death signal first thing; once it has loaded FFmpeg's
    # libraries it is past that (freezing it during interpreter start-up would test nothing).
    wait_for(lambda: all(_has_loaded_ffmpeg(worker) for worker in workers),
             max(deadline - time.monotonic(), 1), "the worker to load FFmpeg's libraries")
    # Frozen, the worker cannot notice a closed pipe on its next progress line: only the
    # kernel's parent-death signal can end it (a worker hung inside a codec call is the same).
    for worker in workers:
        worker.suspend()
    try:
        child.kill()
        child.communicate(timeout=60)
        wait_for(lambda: _ended(workers), 10, "the worker to end with its SIGKILLed supervisor")
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                worker.kill()
    assert not dst.exists()


def _ended(processes: list[psutil.Process]) -> bool:
    """All gone or zombies (an orphan is reaped by init, which may take its time here)."""
    running = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
    return not running


def _has_loaded_ffmpeg(process: psutil.Process) -> bool:
    try:
        return any("libavcodec" in region.path for region in process.memory_maps())
    except psutil.Error:
        return False


def test_a_symlink_planted_at_the_temporary_name_is_not_written_through(
        clips: Clips, tmp_path: Path) -> None:
    # The old partial name was predictable (".out.partial-<pid>.mp4" beside DST): a symlink
    # planted there sent the worker's output into the victim and left DST a link to it.
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    dst = tmp_path / "out.mp4"
    for pid in {os.getpid(), os.getppid()}:
        (tmp_path / f".out.partial-{pid}.mp4").symlink_to(victim)
    result = run(MediaSettings(), clips.tiny, dst)
    assert result.ok, result.error
    assert victim.read_text() == "precious\n"
    assert dst.is_file() and not dst.is_symlink()
    leftovers = {p.name for p in tmp_path.iterdir()} - {"victim.conf", "out.mp4"}
    assert all(name.startswith(".out.partial-") for name in leftovers)  # only what we planted


def test_a_symlink_at_dst_is_replaced_never_written_through(clips: Clips,
                                                            tmp_path: Path) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    dst = tmp_path / "out.mp4"
    dst.symlink_to(victim)
    result = run(MediaSettings(), clips.tiny, dst)
    assert result.ok, result.error
    assert victim.read_text() == "precious\n"
    assert dst.is_file() and not dst.is_symlink() and dst.stat().st_size > 0


def test_the_partial_output_lives_in_a_private_folder(clips: Clips, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    seen: list[tuple[str, int]] = []

    def watch(_event: object) -> None:
        for entry in tmp_path.iterdir():
            if entry.name.startswith(".out.vmkeeper-"):
                seen.append((entry.name, entry.stat().st_mode & 0o777))

    from vmkeeper.media.service import reverse

    assert reverse(MediaSettings(), clips.tiny, dst, watch).ok
    assert seen and all(mode == 0o700 for _name, mode in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # the folder is gone

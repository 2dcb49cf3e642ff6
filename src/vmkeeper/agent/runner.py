"""Runs queued operations one at a time, each in its own process group, streaming its events.

The worker child (agent/worker.py) reports ProgressEvents as JSON lines; each is redacted and
stored as an event the SSE stream serves. Cancel kills the child's group — unless the deploy's
switch has begun, which is let finish (a half-made switch is worse than a finished one).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmkeeper import proc, telemetry
from vmkeeper.agent import audit
from vmkeeper.agent.store import Operation, OpState, Store
from vmkeeper.errors import LockHeld
from vmkeeper.flock import live_holder
from vmkeeper.releases.lock import LOCK_NAME
from vmkeeper.settings import Settings

_SWITCH_WORDS = ("switch",)  # a deploy step whose start means cancel must let it finish
OPERATION_TIMEOUT_S = 3600.0


def lock_holder(settings: Settings) -> str | None:
    """Who holds the deploy lock the CLI shares (a description), or None when it is free."""
    holder = live_holder(settings.releases.root / LOCK_NAME)
    return holder.describe() if holder else None


def refuse_if_locked(settings: Settings) -> None:
    """LockHeld (→ 409) naming the holder when a CLI or agent mutation holds the lock."""
    who = lock_holder(settings)
    if who:
        raise LockHeld(f"Another deploy or rollback is running ({who}); try again when it has "
                       "finished.")


@dataclass
class Runner:
    store: Store
    settings: Settings
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _current: dict[str, proc.Running] = field(default_factory=dict)
    _switching: set[str] = field(default_factory=set)
    _cancelled: set[str] = field(default_factory=set)
    # Each queued operation's trace context (TRACEPARENT of the request that queued it): its
    # worker's spans continue the request's trace. In memory: after a restart, a new trace.
    _traces: dict[str, Mapping[str, str]] = field(default_factory=dict)
    _stop: bool = False

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="vmkeeper-runner", daemon=True)
        thread.start()
        return thread

    def wake(self) -> None:
        self._wake.set()

    def traced(self, op_id: str) -> None:
        """Remember the current trace context for ``op_id`` (the first request's, coalesced)."""
        context = telemetry.child_env()
        if context:
            self._traces.setdefault(op_id, context)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            op = self.store.next_queued()
            if op is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.run_one(op)

    def run_one(self, queued: Operation) -> None:
        op = self.store.claim(queued.id)
        if op is None:  # cancelled between being seen and being taken: it never runs
            return
        argv = [sys.executable, "-m", "vmkeeper.agent.worker", op.kind, json.dumps(op.body)]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{op.id}.log"
        started = time.monotonic()
        env = {**self.env, **self._traces.pop(op.id, {})}  # and the trace it continues
        with open(log, "a") as log_file, proc.start(
                argv, timeout=OPERATION_TIMEOUT_S, env=env) as child:
            self._current[op.id] = child
            self.store.start(op.id, child.pid)
            self._event(op.id, {"type": "step", "message": f"{op.kind} started"}, log_file)
            assert child.stderr is not None and child.stdout is not None
            for raw in child.stderr:
                self._line(op.id, raw, log_file)
            out = child.stdout.read()
            code = child.wait()
            self._current.pop(op.id, None)
        self._finish(op, code, out, time.monotonic() - started)

    def _line(self, op_id: str, raw: str | bytes, log_file: Any) -> None:
        from vmkeeper.redact import redact_text

        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        try:
            event = json.loads(text)
            event = event if isinstance(event, dict) else {"message": str(event)}
        except ValueError:
            event = {"message": text.rstrip("\n")}
        event["message"] = redact_text(str(event.get("message", "")))
        event["type"] = "output" if event.get("phase") == "output" else "step"
        if any(word in str(event.get("step") or event["message"]).lower()
               for word in _SWITCH_WORDS):
            self._switching.add(op_id)
        self._event(op_id, event, log_file)

    def _event(self, op_id: str, event: dict[str, Any], log_file: Any) -> None:
        self.store.add_event(op_id, event)
        log_file.write(json.dumps(event) + "\n")
        log_file.flush()

    def _finish(self, op: Operation, code: int, out: str | bytes, seconds: float) -> None:
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        try:
            result: dict[str, Any] | None = json.loads(text) if text.strip() else None
        except ValueError:
            result = None
        cancelled = op.id in self._cancelled
        state = (OpState.CANCELLED if cancelled else
                 OpState.SUCCEEDED if code == 0 else OpState.FAILED)
        error = None if code == 0 else (result or {}).get("error") or f"exit code {code}"
        self.store.finish(op.id, state, result, error, exit_code=code, seconds=round(seconds, 3))
        audit.append(self.settings.state_dir, who=op.who, request_id=op.request_id,
                     operation=op.id, kind=op.kind, body=op.body,
                     before=(result or {}).get("previous"), after=(result or {}).get("active"),
                     result=state.value)

    def cancel(self, op_id: str) -> dict[str, Any]:
        """Kill the operation's tree unless its switch has begun; say what was done."""
        if self.store.finish(op_id, OpState.CANCELLED, None, "cancelled before it started",
                             was=OpState.QUEUED):
            return {"cancelled": True, "detail": "It was queued; it will not run."}
        op = self.store.get(op_id)  # not queued (any more): claimed, running or closed
        child = self._current.get(op_id)
        if op.state.finished:
            return {"cancelled": False, "detail": f"It has already {op.state.value}."}
        if child is None:  # claimed, its process not yet started
            return {"cancelled": False, "detail": "It is starting; cancel it again in a "
                    "moment."}
        if op_id in self._switching:
            return {"cancelled": False, "detail": "The switch to the new release has begun; it "
                    "is being finished rather than left half-done."}
        holder = live_holder(self.settings.releases.root / LOCK_NAME)
        self._cancelled.add(op_id)
        child.kill()  # the whole group, then waits for it
        removed = self._remove_half_built(holder.extra.get("release") if holder else None)
        return {"cancelled": True, "removed_release": removed,
                "detail": "Its process tree was killed before the switch; the release that "
                "was serving still serves" + (f" and the half-built {removed} was removed."
                                              if removed else ".")}

    def _remove_half_built(self, release_id: str | None) -> str | None:
        """Remove the release a cancelled deploy was building (never live: the switch had not
        begun), so no half-built directory is left."""
        from vmkeeper.releases.store import remove_release

        root = self.settings.releases.root
        if not release_id or not (root / release_id).is_dir():
            return None
        remove_release(root, release_id)
        return release_id

"""The watcher's view of the deploy lock: a live deploy is a maintenance window, a free or
abandoned lock is not, and a deploy that outlives watch.deploy_timeout_s is no longer one."""

from __future__ import annotations

import time
from pathlib import Path

from vmkeeper.releases.lock import acquire
from vmkeeper.settings import Settings
from vmkeeper.watch.service import in_maintenance


def _settings(tmp_path: Path) -> Settings:
    return Settings.model_validate({"releases": {"root": str(tmp_path)}, "state_dir": str(tmp_path),
                                    "watch": {"deploy_timeout_s": 600}})


def test_a_held_deploy_lock_is_a_maintenance_window(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert not in_maintenance(settings, time.time())
    with acquire(tmp_path, "deploy", branch="main"):
        assert in_maintenance(settings, time.time())
        assert not in_maintenance(settings, time.time() + 601)  # outlived its timeout
    assert not in_maintenance(settings, time.time())


def test_a_dead_holder_is_no_maintenance_window(tmp_path: Path) -> None:
    from vmkeeper.releases.lock import LOCK_NAME

    (tmp_path / LOCK_NAME).write_text('{"pid": 999999999, "what": "deploy", '
                                      '"since": "2026-12-01T20:00:00.000Z"}')
    assert not in_maintenance(_settings(tmp_path), time.time())

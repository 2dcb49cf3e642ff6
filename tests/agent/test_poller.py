from __future__ import annotations

from pathlib import Path

from vmkeeper import proc
from vmkeeper.agent.poller import Poller
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.settings import Settings

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def _git(*args: str) -> str:
    return proc.run([*GIT, *args], timeout=30).stdout.strip()


def test_a_new_commit_on_the_branch_queues_one_deploy(tmp_path: Path) -> None:
    origin, dev, ws = tmp_path / "origin.git", tmp_path / "dev", tmp_path / "ws"
    _git("init", "-q", "--bare", "-b", "main", str(origin))
    _git("clone", "-q", str(origin), str(dev))
    _git("-C", str(dev), "commit", "-q", "--allow-empty", "-m", "one")
    _git("-C", str(dev), "push", "-q", "origin", "HEAD:main")
    _git("clone", "-q", str(origin), str(ws / "frontend"))
    settings = Settings.model_validate({"state_dir": tmp_path / "state",
                                        "workspace": {"path": ws, "frontend_dir": "frontend"}})
    store = Store(settings.state_dir)
    poller = Poller(settings, store, Runner(store, settings, tmp_path / "ops"))
    assert poller.check() is None  # the workspace already has origin's commit
    _git("-C", str(dev), "commit", "-q", "--allow-empty", "-m", "two")
    _git("-C", str(dev), "push", "-q", "origin", "HEAD:main")
    queued = poller.check()
    assert queued is not None and store.get(queued).who == "poll"
    assert poller.check() is None  # nothing new since

"""Poll mode, for a VM a webhook cannot reach: `git ls-remote` every ``agent.poll_s`` seconds
(through the git adapter); a new commit on ``agent.branch`` queues a deploy like a push does."""

from __future__ import annotations

import threading

from vmkeeper.adapters.git import Git
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.errors import VmkeeperError
from vmkeeper.settings import Settings


class Poller:
    def __init__(self, settings: Settings, store: Store, runner: Runner,
                 git: Git | None = None) -> None:
        self.settings, self.store, self.runner = settings, store, runner
        self.git = git or Git(settings.workspace.path / settings.workspace.frontend_dir,
                              timeout=settings.releases.git_timeout_s)
        self.last: str | None = None
        self._stop = threading.Event()

    def check(self) -> str | None:
        """One look; the id of the deploy it queued, if the branch moved."""
        try:
            sha = self.git.remote_sha(self.settings.workspace.remote, self.settings.agent.branch)
        except VmkeeperError:
            return None  # a network hiccup: the next look tries again
        if sha is None or sha == self.last:
            return None
        first, self.last = self.last is None, sha
        if first and self.git.rev_parse("HEAD") == sha:
            return None  # already what the workspace has: nothing new since the start
        created = self.store.create("deploy", {"branch": self.settings.agent.branch},
                                    who="poll", coalesce=True)
        self.runner.wake()
        return created.operation.id

    def start(self) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(self.settings.agent.poll_s):
                self.check()
        thread = threading.Thread(target=loop, name="vmkeeper-poller", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

"""The agent's app in-process (FastAPI TestClient): the runner built but not started, so
operations stay queued and the tests drive their state through the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vmkeeper.agent import auth
from vmkeeper.agent.api import create_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.settings import Settings

SECRET = "whsec-0123456789abcdef0123456789abcdef"


@pytest.fixture
def world(tmp_path: Path) -> tuple[TestClient, Store, dict[str, str]]:
    """The client, the store and a token of each scope, by scope name."""
    settings = Settings.model_validate({
        "state_dir": tmp_path, "releases": {"root": tmp_path / "releases"},
        "agent": {"webhook_secret": SECRET}})
    store = Store(tmp_path)
    client = TestClient(create_app(settings, store, Runner(store, settings, tmp_path / "ops")))
    tokens = {scope.value: auth.add(tmp_path, scope.value, scope).token for scope in auth.Scope}
    return client, store, tokens

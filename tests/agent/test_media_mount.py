"""One service: the agent serves the media job API at /v1/media, where `media_url()` sends the
CLI, the dashboard and the sandbox's backend — the backend's media.token and the agent's own
scoped tokens both admitted there."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from tests.media_service.fakes import scripted_queue
from tests.media_service.helpers import TOKEN, settings_for
from vmkeeper.agent import auth
from vmkeeper.agent.admission import admit
from vmkeeper.agent.api import create_app
from vmkeeper.agent.app import create_app as media_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.settings import Settings


def test_media_url_is_the_agent_s_v1_media_unless_media_url_names_media_serve() -> None:
    assert Settings().media_url() == "http://127.0.0.1:3900/v1/media"
    served = Settings.model_validate({"agent": {"port": 4100, "tls_cert": "/c", "tls_key": "/k"}})
    assert served.media_url() == "https://127.0.0.1:4100/v1/media"
    alias = Settings.model_validate({"media": {"url": "http://127.0.0.1:3090/"}})
    assert alias.media_url() == "http://127.0.0.1:3090"


def test_the_backend_s_token_and_the_agent_s_scopes_reach_the_mounted_media_api(
        tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (settings.media.storage_root / "a.mp4").write_bytes(b"video")
    queue, _executor, _records = scripted_queue(settings)
    store = Store(settings.state_dir)
    client = TestClient(create_app(settings, store, Runner(store, settings, tmp_path / "ops"),
                                   media_app(queue, TOKEN, admit)))
    base = urlsplit(settings.media_url()).path
    reader = auth.add(settings.state_dir, "reader", auth.Scope.READ).token
    operator = auth.add(settings.state_dir, "ci", auth.Scope.OPERATE).token

    def submit(token: str) -> int:
        return client.post(f"{base}/reverse", json={"key": "a.mp4"},
                           headers={"Authorization": f"Bearer {token}"}).status_code

    assert submit(TOKEN) == 202  # the backend's media.token
    assert submit(reader) == 403 and submit("wrong") == 401
    assert submit(operator) in (200, 202)  # the same key again: the job already queued
    jobs = client.get(f"{base}/jobs", headers={"Authorization": f"Bearer {reader}"})
    assert jobs.status_code == 200 and jobs.json()["jobs"][0]["key"] == "a.mp4"
    assert client.get(f"{base}/health").status_code == 200

"""The sandbox's own agent (started by `sandbox up`, outside PM2): its unix socket (0660)
answers what TCP answers; a chunked body is refused while it streams; the logs and the bundle
come out redacted from the real PM2 apps."""

from __future__ import annotations

import io
import json
import select
import socket
import stat
import tarfile
import uuid

import httpx
import pytest

from tests.conftest import SandboxHandle
from vmkeeper.agent import auth, daemon, limits
from vmkeeper.sandbox.layout import PLANTED_SECRETS

pytestmark = pytest.mark.slow


def _read(sandbox: SandboxHandle) -> dict[str, str]:
    token = auth.add(sandbox.settings.state_dir, f"ops-{uuid.uuid4().hex[:8]}",
                     auth.Scope.READ).token
    return {"Authorization": f"Bearer {token}"}


def test_the_unix_socket_is_0660_and_answers_as_tcp_does(sandbox: SandboxHandle) -> None:
    path = daemon.socket_path(sandbox.settings)
    assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o660
    read = _read(sandbox)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=30) as client:
        over_socket = client.get("http://agent/v1/releases", headers=read)
        assert client.get("http://agent/v1/releases").status_code == 401
    over_tcp = httpx.get(f"http://127.0.0.1:{sandbox.settings.agent.port}/v1/releases",
                         headers=read, timeout=30)
    assert over_socket.status_code == over_tcp.status_code == 200
    assert over_socket.json() == over_tcp.json() and over_socket.headers["x-request-id"]


def test_a_chunked_body_without_a_length_gets_413_before_it_ends(
        sandbox: SandboxHandle) -> None:
    """The body's last chunk is never sent: an agent that read bodies whole would never
    answer (the recv below times out); one that counts while they stream answers 413."""
    frame = b"%x\r\n%s\r\n" % (16384, b"a" * 16384)
    with socket.create_connection(("127.0.0.1", sandbox.settings.agent.port), timeout=30) as s:
        s.sendall(b"POST /v1/deploy HTTP/1.1\r\nHost: agent\r\nContent-Type: "
                  b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4 * limits.MAX_BODY // 16384):
            if select.select([s], [], [], 0)[0]:
                break  # the agent has answered already
            try:
                s.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 10:
            more = s.recv(65536)
            if not more:
                break
            answer += more
    head, _sep, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"x-request-id" in head.lower() and b"The body is over 65536 bytes" in body


def test_logs_and_the_bundle_come_out_of_the_real_apps_redacted(
        sandbox: SandboxHandle) -> None:
    settings, read = sandbox.settings, _read(sandbox)
    base = f"http://127.0.0.1:{settings.agent.port}"
    out_log = settings.pm2.home / "logs" / f"{settings.apps.backend.name}-out.log"
    with out_log.open("a") as log:  # what an app printing its environment leaves
        log.write(f"connecting as app with {PLANTED_SECRETS['DB_PASSWORD']}\n")
    logs = httpx.get(f"{base}/v1/logs/{settings.apps.backend.name}", params={"lines": 20},
                     headers=read, timeout=60)
    assert logs.status_code == 200, logs.text
    texts = [line["text"] for line in logs.json()["lines"]]
    assert any(text.startswith("connecting as app with ") for text in texts)
    assert all(value not in logs.text for value in PLANTED_SECRETS.values())
    unknown = httpx.get(f"{base}/v1/logs/no-such-app", headers=read, timeout=60)
    assert unknown.status_code == 404 and "No app named" in unknown.json()["detail"]

    bundle = httpx.post(f"{base}/v1/bundle", json={"timeout_s": 30}, headers=read, timeout=300)
    assert bundle.status_code == 200, bundle.text
    with tarfile.open(fileobj=io.BytesIO(bundle.content), mode="r:gz") as archive:
        files = {m.name.split("/", 1)[1]: archive.extractfile(m).read()  # type: ignore[union-attr]
                 for m in archive.getmembers() if m.isfile()}
    assert {"manifest.json", "pm2/dump.pm2", "pm2/jlist.json", "health.json"} <= set(files)
    assert json.loads(files["manifest.json"])["config_file"] == str(sandbox.config)
    for name, data in files.items():
        for value in PLANTED_SECRETS.values():
            assert value.encode() not in data, f"{name} holds a planted secret"

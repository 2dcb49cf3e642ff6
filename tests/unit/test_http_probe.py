"""The HTTP probe against a real local server: statuses, headers, and each failure told apart."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vmkeeper.adapters.http import ProbeError, describe, probe


class _Site(BaseHTTPRequestHandler):
    def version_string(self) -> str:  # the Server header
        return "Apache/2.4.62 (Debian)"

    def do_GET(self) -> None:
        if self.path == "/down":
            body = b"<title>503 Service Unavailable</title>" + b"x" * 100_000
            self.send_response(503)
        else:
            body = f"you asked for {self.path} with {self.headers.get('X-Probe')}".encode()
            self.send_response(401 if self.path.startswith("/api") else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_status_body_and_headers_sent(site: str) -> None:
    answer = probe(f"{site}/page?x=1", timeout=5, headers={"X-Probe": "yes"})
    assert (answer.status, answer.error) == (200, None)
    assert answer.body_head == "you asked for /page?x=1 with yes"
    assert probe(f"{site}/api/auth/me", timeout=5).status == 401


def test_apaches_own_503_is_told_apart_and_only_the_head_of_the_body_is_kept(site: str) -> None:
    answer = probe(f"{site}/down", timeout=5)
    assert answer.proxy_unavailable
    assert len(answer.body_head) == 2000
    assert describe(answer) == "503 from Apache (upstream unreachable)"


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    answer = probe(f"http://127.0.0.1:{port}/", timeout=5)
    assert answer.error is ProbeError.REFUSED and describe(answer) == "connection refused"


def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        answer = probe(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.3)
    assert answer.error is ProbeError.TIMEOUT
    assert 0.3 <= answer.seconds < 3


def test_a_url_that_is_not_http_is_an_error_value_not_an_exception() -> None:
    answer = probe("ftp://example.org/", timeout=1)
    assert answer.error is ProbeError.OTHER and "not an http(s) URL" in (answer.detail or "")

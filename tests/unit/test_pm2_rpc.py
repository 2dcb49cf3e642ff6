"""PM2's RPC socket in the fast tier: a scripted daemon on a real unix socket answers with the
AMP frames PM2's daemon writes, carrying a recorded `pm2 jlist`; every malformed answer is
one sentence, never a hang or a traceback. (The slow tier asks the sandbox's real daemon.)"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.apache_dirs import apache_reachable
from vmkeeper.adapters import pm2_rpc
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import CommandTimeout, VmkeeperError
from vmkeeper.jsonable import parse_json

DATA = Path(__file__).parents[1] / "data" / "pm2"
Reply = Callable[[list[bytes]], bytes | None]  # the request's raw args -> bytes to answer


def _decode(frame: bytes) -> list[bytes]:
    argc, offset, args = frame[0] & 0x0F, 1, []
    for _ in range(argc):
        (length,) = struct.unpack(">I", frame[offset:offset + 4])
        args.append(frame[offset + 4:offset + 4 + length])
        offset += 4 + length
    return args


def _frame(*raw: bytes) -> bytes:
    return bytes([0x10 | len(raw)]) + b"".join(struct.pack(">I", len(a)) + a for a in raw)


@pytest.fixture
def home() -> Iterator[Path]:
    # A short path: a unix socket's name is limited to 108 bytes (pytest's tmp_path is long).
    with apache_reachable("pm2rpc-") as folder:
        yield folder


def _daemon(home: Path, reply: Reply) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(home / "rpc.sock"))
    server.listen(1)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                request = conn.recv(1 << 16)
                answer = reply(_decode(request))
                if answer is not None:
                    conn.sendall(answer)
                    conn.shutdown(socket.SHUT_WR)
                with contextlib.suppress(OSError):
                    conn.recv(1)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _answer_with(body: bytes) -> Reply:
    return lambda request: _frame(body, request[1])


def test_the_daemon_s_list_is_what_jlist_prints(home: Path) -> None:
    recorded = (DATA / "jlist-healthy.json").read_text()
    seen: list[list[bytes]] = []

    def reply(request: list[bytes]) -> bytes:
        seen.append(request)
        return _frame(b'j:{"args":[' + recorded.encode() + b"]}", request[1])

    _daemon(home, reply)
    apps = Pm2("pm2", home, timeout=5).live_list()
    assert apps is not None
    assert [a.name for a in apps] == [e["name"] for e in parse_json(recorded, "recording")]
    [(call, request_id)] = seen
    assert parse_json(call[2:], "request") == {"type": "call", "method": "getMonitorData",
                                               "args": [{}]}
    assert call.startswith(b"j:") and request_id.startswith(b"s:")


def test_no_socket_or_nobody_listening_is_no_daemon_and_nothing_is_started(home: Path
                                                                           ) -> None:
    def never(*_a: object, **_k: object) -> object:
        raise AssertionError("a pm2 command would start a daemon")

    pm2 = Pm2("pm2", home, timeout=5, runner=never)  # type: ignore[arg-type]
    assert pm2.live_list() is None
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(home / "rpc.sock"))  # a socket file left by a killed daemon
    stale.close()
    with pytest.raises(pm2_rpc.DaemonUnreachable, match="Connection refused"):
        pm2_rpc.monitor_data(home, 5)
    assert pm2.live_list() is None


def test_a_daemon_that_never_answers_is_a_timeout_in_one_sentence(home: Path) -> None:
    _daemon(home, lambda _request: None)
    with pytest.raises(CommandTimeout, match=r"did not answer within 0\.3 s"):
        pm2_rpc.monitor_data(home, 0.3)


@pytest.mark.parametrize(("answer", "words"), [
    (lambda r: b"\x20" + _frame(b"j:{}", r[1])[1:], "not an AMP v1"),
    (lambda r: _frame(b'j:{"args":[[]]}', b"s:someone-else:7"), "not as PM2's RPC"),
    (lambda r: _frame(b"s:hello", r[1]), "not as PM2's RPC"),
    (lambda r: _frame(b'j:{"args":[{"not":"a list"}]}', r[1]), "not a list"),
    (lambda r: _frame(b"j:[1,2", r[1]), "is not JSON"),
    (lambda r: bytes([0x11]) + struct.pack(">I", pm2_rpc.MAX_REPLY_BYTES + 1), "over"),
    (lambda r: _frame(b'j:{"args":[[' + b"[" * 5000 + b"]" * 5000 + b"]]}", r[1]),
     "deeper than"),
])
def test_a_malformed_answer_is_refused_in_one_sentence(home: Path, answer: Reply,
                                                       words: str) -> None:
    _daemon(home, answer)
    with pytest.raises(pm2_rpc.RpcProtocolError, match=words):
        pm2_rpc.monitor_data(home, 5)


def test_a_protocol_pm2_does_not_speak_falls_back_to_its_cli(home: Path) -> None:
    recorded = (DATA / "jlist-executor-stopped.json").read_text()
    calls: list[list[str]] = []

    def cli(argv: list[str], **_kw: object) -> object:
        from vmkeeper import proc

        calls.append(list(argv))
        return proc.Result(tuple(argv), 0, recorded, "", 0.01)

    _daemon(home, _answer_with(b"s:not the rpc you know"))
    (home / "pm2.pid").write_text(f"{os.getpid()}\n")  # a daemon runs
    apps = Pm2("pm2", home, timeout=5, runner=cli).live_list()  # type: ignore[arg-type]
    assert calls == [["pm2", "jlist"]] and apps is not None and apps


def test_the_daemon_s_own_error_is_said(home: Path) -> None:
    _daemon(home, _answer_with(b'j:{"error":"method \\"getMonitorData\\" does not exist"}'))
    with pytest.raises(VmkeeperError, match="refused getMonitorData: method"):
        pm2_rpc.monitor_data(home, 5)

"""PM2's process list straight from its daemon, over the daemon's own RPC socket.

`pm2 jlist` is a Node program: ~0.2 s of CPU to start (on every health run and every watcher
cycle), and when its ping of the daemon fails it *starts a new, empty daemon* — so a look that
overlaps a `pm2 kill` hides the very outage it is asked about (reproduced 3 of 3 times). The
daemon answers the same question on ``$PM2_HOME/rpc.sock``: the CLI's own `jlist` is one call
of its `getMonitorData` method there, printed with JSON.stringify. Asking there costs a socket
round trip and never starts anything: no socket, or nobody listening on it, is "no daemon".

Written here rather than taken from a library: the protocol is PM2's fork of axon (pm2-axon
req/rep + pm2-axon-rpc) over AMP framing, and no Python package speaks it. The wire, as
PM2 7.0.4's node_modules has it (and unchanged since PM2 1.x):

- a message is AMP: one byte ``version << 4 | argc`` (version 1, argc ≤ 15), then per argument
  a 4-byte big-endian length and the bytes; an argument is ``j:<JSON>``, ``s:<string>`` or raw;
- a request is ``[j:{"type":"call","method":M,"args":[...]}, s:<id>]``; the reply is
  ``[j:{"args":[result...]}, s:<id>]`` or ``[j:{"error":"…"}, s:<id>]``.

Reading is linear in the reply's size and bounded (MAX_REPLY_BYTES); every call has a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from vmkeeper.errors import CommandTimeout, VmkeeperError
from vmkeeper.jsonable import parse_json

MAX_REPLY_BYTES = 64 * 1024 * 1024  # a list of hundreds of apps with their environments
_VERSION = 1


class DaemonUnreachable(VmkeeperError):
    """No PM2 daemon answers on the socket (none runs, or it is dying)."""


class RpcProtocolError(VmkeeperError):
    """Something answered, but not as PM2's RPC does (another program, another protocol)."""


def socket_path(home: Path) -> Path:
    return home / "rpc.sock"


def _pack(value: Any) -> bytes:
    if isinstance(value, str):
        return b"s:" + value.encode()
    return b"j:" + json.dumps(value, separators=(",", ":")).encode()


def encode(args: list[Any]) -> bytes:
    """One AMP message of ``args`` (each packed as axon does)."""
    if len(args) > 15:
        raise ValueError("AMP carries at most 15 arguments")
    packed = [_pack(arg) for arg in args]
    out = bytearray([_VERSION << 4 | len(packed)])
    for arg in packed:
        out += struct.pack(">I", len(arg)) + arg
    return bytes(out)


class _Reader:
    """Exactly ``n`` bytes at a time from the socket, within one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def read(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise DaemonUnreachable("the PM2 daemon closed its RPC socket mid-answer")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def read_message(reader: _Reader) -> list[bytes]:
    """One AMP message's raw arguments."""
    meta = reader.read(1)[0]
    if meta >> 4 != _VERSION:
        raise RpcProtocolError(f"not an AMP v1 message (first byte {meta:#04x})")
    args, total = [], 0
    for _ in range(meta & 0x0F):
        (length,) = struct.unpack(">I", reader.read(4))
        total += length
        if total > MAX_REPLY_BYTES:
            raise RpcProtocolError(f"an answer over {MAX_REPLY_BYTES} bytes")
        args.append(reader.read(length))
    return args


def call(home: Path, method: str, *args: Any, timeout: float) -> list[Any]:
    """Call ``method`` on the PM2 daemon of ``home``; its results (the callback's arguments
    after the error). Raises DaemonUnreachable (no daemon), CommandTimeout (a wedged one),
    RpcProtocolError (not PM2's RPC), or VmkeeperError with the daemon's own error message."""
    path = socket_path(home)
    deadline = time.monotonic() + timeout
    request_id = f"{os.getpid()}:0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise DaemonUnreachable(f"no PM2 daemon answers on {path} ({error.strerror})"
                                    ) from None
        try:
            sock.sendall(encode([{"type": "call", "method": method, "args": list(args)},
                                 request_id]))
            reply = read_message(_Reader(sock, deadline))
        except TimeoutError:  # a wedged daemon: what `pm2 jlist` timing out would say
            raise CommandTimeout(f"the PM2 daemon on {path} did not answer within "
                                 f"{timeout:g} s (wedged?)") from None
        except (ConnectionResetError, BrokenPipeError) as error:
            raise DaemonUnreachable(f"the PM2 daemon on {path} went away ({error.strerror})"
                                    ) from None
    if len(reply) != 2 or reply[1] != b"s:" + request_id.encode() or not reply[0].startswith(
            b"j:"):
        raise RpcProtocolError(f"{path} answered, but not as PM2's RPC does")
    try:
        body = parse_json(reply[0][2:], f"the PM2 daemon's answer on {path}",
                          error=RpcProtocolError)
    except json.JSONDecodeError as error:
        raise RpcProtocolError(f"the PM2 daemon's answer on {path} is not JSON ({error.msg})"
                               ) from None
    if not isinstance(body, dict):
        raise RpcProtocolError(f"{path} answered, but not as PM2's RPC does")
    if "error" in body:
        raise VmkeeperError(f"the PM2 daemon refused {method}: {body['error']}")
    results = body.get("args")
    if not isinstance(results, list):
        raise RpcProtocolError(f"{path} answered {method} without results")
    return results


def monitor_data(home: Path, timeout: float) -> list[Any]:
    """What `pm2 jlist` prints, as data: the daemon's getMonitorData."""
    results = call(home, "getMonitorData", {}, timeout=timeout)
    if not results or not isinstance(results[0], list):
        raise RpcProtocolError("the PM2 daemon's getMonitorData is not a list")
    return results[0]

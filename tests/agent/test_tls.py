"""The agent off loopback: refused without TLS (one sentence), and served over real TLS with a
certificate (trustme's throwaway CA) by the real agent process."""

from __future__ import annotations

import socket
import ssl
import sys

import httpx
import pytest

from tests.support.apache_dirs import apache_reachable
from tests.support.waiting import wait_for
from vmkeeper import proc
from vmkeeper.agent.daemon import _check_bind
from vmkeeper.errors import SettingsError
from vmkeeper.settings import Settings


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "vm.example.org"])
def test_a_non_loopback_address_without_tls_is_refused_in_one_sentence(host: str) -> None:
    with pytest.raises(SettingsError, match=f"agent.host {host} is not a loopback address"):
        _check_bind(Settings.model_validate({"agent": {"host": host}}))
    _check_bind(Settings.model_validate({"agent": {"host": host, "tls_cert": "/c.pem",
                                                   "tls_key": "/k.pem"}}))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_needs_no_tls(host: str) -> None:
    _check_bind(Settings.model_validate({"agent": {"host": host}}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow  # starts the real agent process
def test_the_agent_serves_over_tls_with_its_certificate_and_refuses_plain_http() -> None:
    import trustme

    ca = trustme.CA()
    with apache_reachable("vmk-tls-") as folder:
        cert, key, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
        issued = ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(ca_file))
        port = _free_port()
        argv = [sys.executable, "-m", "vmkeeper", "--set", f"state_dir={folder / 'state'}",
                "--set", f"agent.tls_cert={cert}", "--set", f"agent.tls_key={key}",
                "--set", f"agent.socket={folder / 'agent.sock'}", "agent", "serve",
                "--port", str(port)]
        with open(folder / "agent.log", "wb") as log, proc.start(argv, timeout=120,
                                                                 stdout=log, stderr=log):
            url = f"https://127.0.0.1:{port}/v1/status"

            ours = ssl.create_default_context(cafile=str(ca_file))

            def answers() -> int:
                return httpx.get(url, verify=ours, timeout=2).status_code

            assert wait_for(answers, 60, "the agent over TLS") == 401
            with pytest.raises(httpx.HTTPError):  # the system's CAs: the certificate is checked
                httpx.get(url, verify=ssl.create_default_context(), timeout=2)
            with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port: no answer
                httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=2)

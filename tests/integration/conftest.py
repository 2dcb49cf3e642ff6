"""Fixtures of the slow integration tests shared by more than one module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TEST_BASE_PORT
from tests.integration.sshd import SSHD, Sshd, running_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on loopback (tests/integration/sshd.py), one per module."""
    assert SSHD.exists(), "openssh-server is not installed: run `make system-deps`"
    with running_sshd(tmp_path_factory.mktemp("sshd"), TEST_BASE_PORT + 9) as server:
        yield server

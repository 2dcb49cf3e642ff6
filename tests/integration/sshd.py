"""A real OpenSSH server on a loopback port, with its own host key and one authorized key, and
an Ansible inventory whose hosts are aliases of it (each with its own vmkeeper settings)."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.waiting import wait_for
from vmkeeper import proc

SSHD = Path("/usr/sbin/sshd")
# The vmkeeper this test run installed: the controller's, and each test host's too.
VMKEEPER = str(Path(sys.executable).parent / "vmkeeper")


def fleet_cli(config: Path, *args: str, timeout: float = 300) -> proc.Result:
    """`vmkeeper --config CONFIG [--set …] fleet …` as its own process (Ansible runs below it)."""
    sets = [a for a in args if a.startswith("--set=")]
    rest = [a for a in args if not a.startswith("--set=")]
    return proc.run([VMKEEPER, "--config", str(config), *sets, "fleet", *rest],
                    timeout=timeout, check=False, env={"NO_COLOR": "1"})


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path
    known_hosts: Path

    def inventory(self, path: Path, hosts: dict[str, Path], unreachable: tuple[str, ...] = (),
                  ) -> Path:
        """An INI inventory: each host an alias of this sshd with its own settings file."""
        ssh_args = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
        common = (f"ansible_host=127.0.0.1 ansible_user={getpass.getuser()} "
                  f"ansible_ssh_private_key_file={self.key} "
                  f"ansible_python_interpreter={sys.executable} "
                  f"ansible_ssh_common_args='{ssh_args}'")
        lines = ["[web]"]
        lines += [f"{name} ansible_port={self.port} vmkeeper_config={config} {common}"
                  for name, config in hosts.items()]
        lines += [f"{name} ansible_port=1 {common}" for name in unreachable]
        path.write_text("\n".join(lines) + "\n")
        return path


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_sshd(folder: Path, port: int) -> Iterator[Sshd]:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    host_key, key = folder / "host_key", folder / "id_ed25519"
    for path in (host_key, key):
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], timeout=30)
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{key}.pub").read_text())
    authorized.chmod(0o600)
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text()}")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}", f"PidFile {folder / 'sshd.pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "PermitRootLogin prohibit-password", "MaxStartups 50:30:100",
        "MaxSessions 50", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    with proc.start([str(SSHD), "-D", "-e", "-f", str(config)], timeout=3600,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        wait_for(lambda: _listening(port), 15, f"sshd listening on {port}")
        yield Sshd(port, key, known)
        server.kill()


def host_configs(folder: Path, count: int, base_port: int) -> dict[str, Path]:
    """``count`` hosts' settings files, each its own state and ports; nothing runs there, so
    each host's vmkeeper answers "critical" after its full set of checks."""
    hosts = {}
    for number in range(1, count + 1):
        config = folder / f"host{number}.toml"
        config.write_text(f'state_dir = "{folder / f"host{number}"}"\n'
                          f'public_url = "http://127.0.0.1:{base_port + 10 * number}"\n')
        hosts[f"host{number}"] = config
    return hosts

"""Where everything of a sandbox lives, and its ports (the VM's ports shifted by a base)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters.apache import Apache
from vmkeeper.adapters.pm2 import Pm2

DEFAULT_DIR = Path(".sandbox")
DEFAULT_BASE_PORT = 10000
ASSETS = Path(__file__).parent / "assets"

# Planted in the apps' environment so a real PM2 dump carries secrets, as on the VM.
PLANTED_SECRETS = {
    "DB_PASSWORD": "sandbox-db-pa55w0rd-7Hq2",
    "JWT_SECRET": "sandbox-jwt-secret-Zx81kQ",
    "SMTP_PASS": "sandbox-smtp-pass-Lm30",
    "CF_TUNNEL_TOKEN": "eyJhIjoiMTIzNDU2Nzg5MCIsInQiOiJzYW5kYm94LXR1bm5lbCJ9",
    "OPENAI_API_KEY": "sk-sandboxA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6",
}


@dataclass(frozen=True)
class Ports:
    base: int = DEFAULT_BASE_PORT

    def shifted(self, vm_port: int) -> int:
        return self.base + vm_port

    @property
    def proxy(self) -> int:
        return self.shifted(80)

    @property
    def frontend(self) -> int:
        return self.shifted(3001)

    @property
    def frontend_spare(self) -> int:
        return self.shifted(3002)

    @property
    def backend(self) -> int:
        return self.shifted(3000)

    @property
    def telemetry_grpc(self) -> int:
        return self.shifted(4317)

    @property
    def telemetry_http(self) -> int:
        return self.shifted(4318)

    @property
    def media(self) -> int:
        return self.shifted(3090)

    @property
    def agent(self) -> int:
        return self.shifted(3900)


@dataclass(frozen=True)
class Layout:
    dir: Path
    ports: Ports

    @classmethod
    def at(cls, directory: Path, base_port: int = DEFAULT_BASE_PORT) -> Layout:
        return cls(directory.resolve(), Ports(base_port))

    @property
    def workspace(self) -> Path:
        return self.dir / "workspace"

    @property
    def releases(self) -> Path:
        return self.dir / "releases"

    @property
    def pm2_home(self) -> Path:
        return self.dir / "pm2"

    @property
    def tools(self) -> Path:
        return self.dir / "tools"

    @property
    def pm2_bin(self) -> Path:
        return self.tools / "node_modules" / ".bin" / "pm2"

    @property
    def apache_root(self) -> Path:
        return self.dir / "apache"

    @property
    def apache_config(self) -> Path:
        return self.apache_root / "httpd.conf"

    @property
    def apache_frontend_include(self) -> Path:
        return self.apache_root / "vmkeeper-frontend.conf"

    @property
    def apache_pid(self) -> Path:
        return self.apache_root / "run" / "httpd.pid"

    @property
    def apache_error_log(self) -> Path:
        return self.apache_root / "logs" / "error.log"

    @property
    def config(self) -> Path:
        return self.dir / "vmkeeper.toml"

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def uploads(self) -> Path:
        return self.workspace / "backend" / "uploads"

    @property
    def marker(self) -> Path:
        return self.dir / ".vmkeeper-sandbox"


def pm2_for(layout: Layout) -> Pm2:
    """The sandbox's own PM2 (its binary, its PM2_HOME)."""
    return Pm2(bin=str(layout.pm2_bin), home=layout.pm2_home, timeout=60)


def apache_for(layout: Layout, binary: str) -> Apache:
    """The sandbox's own Apache (its config, its pid file)."""
    return Apache(binary, layout.apache_config, layout.apache_pid)

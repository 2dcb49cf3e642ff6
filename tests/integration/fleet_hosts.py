"""Cheap fleet hosts on the session sandbox: each host is its own vmkeeper "VM" — its own
settings file, state, git workspace (a clone of one shared origin holding the zero-dependency
fixture frontend), releases root, frontend app and ports, and its own Apache (with the
zero-downtime switch's include) — but all of them share the sandbox's PM2 daemon and its
backend, telemetry, executor and media apps instead of running four more copies.

What that costs in realism, said where it matters: each host's health also sees the other
hosts' frontends in PM2 (`pm2:unexpected`, a warning: warn counts as healthy for a wave), and
hosts must not deploy in the same wave (their concurrent `pm2 save`s would write one dump
file), so the tests roll one host per wave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SandboxHandle
from vmkeeper import proc
from vmkeeper.sandbox import service as sandbox_service
from vmkeeper.sandbox.layout import Layout
from vmkeeper.settings import Settings, load_settings

BROKEN_BUILD = ["sh", "-c", "echo 'this host cannot build: npm run build exited 1' >&2; exit 1"]


@dataclass(frozen=True)
class FleetHost:
    name: str
    layout: Layout  # its Apache, ports, state; PM2 is the sandbox's

    @property
    def config(self) -> Path:
        return self.layout.config

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, env={}).settings

    @property
    def app(self) -> str:
        return f"frontend-{self.name}"


def host_toml(sandbox: SandboxHandle, host: FleetHost, *, broken: bool = False) -> str:
    """The sandbox's own settings file for the host's layout, but for the sandbox's PM2 and
    backend apps, its own frontend app name, and (``broken``) a build that fails."""
    layout, shared = host.layout, sandbox.settings
    p = layout.ports
    build = f"\nbuild_command = {json.dumps(BROKEN_BUILD)}" if broken else ""
    text = sandbox_service.toml_text(layout, shared.proxy.bin)
    for old, new in {
        f"spare_port = {p.frontend_spare}\n": f"spare_port = {p.frontend_spare}\n"
        f"ready_timeout_s = 6\ndisk_margin_mb = 10{build}\n",
        f"[apps.frontend]\nport = {p.frontend}\n":
            f"[apps.frontend]\nname = {json.dumps(host.app)}\nport = {p.frontend}\n",
        f"[apps.backend]\nport = {p.backend}\n":
            f"[apps.backend]\nport = {shared.apps.backend.port}\n",
        f"[apps.telemetry]\nport = {p.telemetry_grpc}\nextra_ports = [{p.telemetry_http}]\n":
            f"[apps.telemetry]\nport = {shared.apps.telemetry.port}\n"
            f"extra_ports = {json.dumps(shared.apps.telemetry.extra_ports)}\n",
        f"[apps.media]\nport = {p.media}\n": f"[apps.media]\nport = {shared.apps.media.port}\n",
        f"otlp_endpoint = {json.dumps(f'http://127.0.0.1:{p.telemetry_http}')}\n":
            f"otlp_endpoint = {json.dumps(shared.telemetry.otlp_endpoint)}\n",
        f"bin = {json.dumps(str(layout.pm2_bin))}\nhome = {json.dumps(str(layout.pm2_home))}\n":
            f"bin = {json.dumps(str(shared.pm2.bin))}\n"
            f"home = {json.dumps(str(shared.pm2.home))}\n",
    }.items():
        assert text.count(old) == 1, f"the sandbox's settings changed shape: {old!r}"
        text = text.replace(old, new)
    return text


def set_broken(sandbox: SandboxHandle, host: FleetHost, broken: bool) -> None:
    """Break (or fix) this host's build: its own settings, as an operator would find it."""
    host.config.write_text(host_toml(sandbox, host, broken=broken))


def make_hosts(sandbox: SandboxHandle, folder: Path, origin: Path, base_port: int,
               count: int) -> list[FleetHost]:
    """``count`` hosts under ``folder``, ports from ``base_port`` + 10 (+2 per host: a host's
    frontend and spare ports are adjacent), their Apaches started."""
    hosts = []
    for number in range(1, count + 1):
        layout = Layout.at(folder / f"host{number}", base_port + 8 + 2 * number)
        host = FleetHost(f"host{number}", layout)
        layout.dir.mkdir(parents=True)
        for made in (layout.releases, layout.state, layout.logs):
            made.mkdir(parents=True)
        proc.run(["git", "clone", "-q", str(origin), str(layout.workspace)], timeout=60)
        set_broken(sandbox, host, False)
        sandbox_service.ensure_proxy(layout, host.settings, sandbox.settings.proxy.bin)
        hosts.append(host)
    return hosts


def remove_hosts(sandbox: SandboxHandle, hosts: list[FleetHost]) -> None:
    """Their Apaches stopped, their apps out of the shared PM2 (and its dump)."""
    for host in hosts:
        sandbox_service.apache_for(host.layout, sandbox.settings.proxy.bin).stop()
        for name in (host.app, f"{host.app}-handover"):
            sandbox.pm2.delete(name, check=False)
    sandbox.pm2.save(force=True)


def active_release(host: FleetHost) -> str | None:
    """The release the host's frontend runs from, as PM2 says (not as vmkeeper reports)."""
    from vmkeeper.adapters.pm2 import Pm2
    from vmkeeper.releases import store

    settings = host.settings
    pm2 = Pm2(bin=settings.pm2.bin, home=settings.pm2.home, timeout=30)
    app = pm2.app(host.app)
    if app is None or not app.online:
        return None
    return store.release_containing(settings.releases.root, app.cwd)


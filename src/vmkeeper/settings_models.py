"""The settings' models: every section of the one Settings object, with the standard VM's
defaults (the runbook's) and their validation. Loading them — the sources, the environment
names, the errors that name a key and its source — is :mod:`vmkeeper.settings`, which also
re-exports every name here (import them from there)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from vmkeeper.tokens import check_token

DEFAULT_CONFIG_FILE = Path("/etc/vmkeeper/vmkeeper.toml")
SECRET_MASK = "***"

# Markers in a field's json_schema_extra, read by secret_keys(): masking follows the model, so a
# secret setting added later is masked by `config show`, bundles and errors without more code.
SECRET: JsonDict = {"secret": True}  # the whole value is a secret (media.token)
SECRET_ENTRIES: JsonDict = {"secret_entries": True}  # a table whose values may be (apps.*.env)


Port = Annotated[int, Field(ge=1, le=65535)]


def _strong(token: str) -> str:
    check_token(token)
    return token


# A bearer token or shared secret: refused when guessable (vmkeeper.tokens); mark the field
# SECRET too, so it never reaches output.
Token = Annotated[str, AfterValidator(_strong)]


class _Section(BaseModel):
    # allow_inf_nan=False: `health.check_timeout_s=inf` passed validation, then crashed `health`;
    # every number vmkeeper reads is finite, and its JSON output stays standard JSON.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True,
                              allow_inf_nan=False)


class WorkspaceSettings(_Section):
    path: Path = Path("/home/ubuntu/executor/workspace")
    frontend_dir: str = "frontend"
    backend_dir: str = "backend"
    branch: str = "main"
    remote: str = "origin"


class ReleasesSettings(_Section):
    root: Path = Path("/home/ubuntu/executor/frontend-releases")
    keep: int = Field(2, ge=1)
    env_files: list[str] = [".env", ".env.local", ".env.production", ".env.production.local"]
    install_command: list[str] = ["npm", "ci"]
    build_command: list[str] = ["npm", "run", "build"]
    remove_paths: list[str] = [".next", ".turbo", "build/cache"]
    build_output: str = "build"
    install_timeout_s: float = Field(900, gt=0)
    build_timeout_s: float = Field(1200, gt=0)
    ready_timeout_s: float = Field(60, gt=0)
    nice: int = Field(10, ge=0, le=19)
    # Free space a new release needs beyond the previous release's size (node_modules varies).
    disk_margin_mb: int = Field(200, ge=0)
    git_timeout_s: float = Field(120, gt=0)
    # The zero-downtime switch starts the new release here first, as a temporary PM2 app.
    spare_port: int = Field(3002, ge=1, le=65535)


class AppSettings(_Section):
    name: str
    port: Port | None = None
    extra_ports: list[Port] = []
    start_script: str | None = None
    env: dict[str, str] = Field({}, json_schema_extra=SECRET_ENTRIES)
    health_path: str | None = None
    expected_status: int | None = None


class AppsSettings(_Section):
    frontend: AppSettings = AppSettings(
        name="frontend-dev",
        port=3001,
        start_script="start",
        health_path="/",
        expected_status=200,
    )
    backend: AppSettings = AppSettings(
        name="backend-dev",
        port=3000,
        start_script="start",
        env={"NODE_ENV": "dev_stage"},
        health_path="/api/auth/me",
        expected_status=401,
    )
    telemetry: AppSettings = AppSettings(name="fl-telemetry", port=4317, extra_ports=[4318])
    executor: AppSettings = AppSettings(name="fl-executor")
    media: AppSettings = AppSettings(name="vmkeeper-media", port=3090, health_path="/health")


class ProxySettings(_Section):
    port: Port = 80
    error_log: Path = Path("/var/log/apache2/error.log")
    config: Path = Path("/etc/apache2/apache2.conf")
    bin: str = "apache2"
    # The zero-downtime switch (docs/deploy-switch.md): the file vmkeeper writes and the VM's
    # vhost includes in place of its frontend ProxyPass, and how Apache is told to reread it.
    frontend_include: Path = Path("/etc/vmkeeper/apache-frontend.conf")
    graceful_command: list[str] = ["sudo", "-n", "apachectl", "graceful"]
    # Longest a request may still be running on the old server after the switch (ProxyTimeout).
    drain_timeout_s: float = Field(35, gt=0)


class Pm2Settings(_Section):
    bin: str = "pm2"
    home: Path = Path("/home/ubuntu/.pm2")
    unit: str = "pm2-ubuntu"
    timeout_s: float = Field(30, gt=0)


class BreakerSettings(_Section):
    failure_threshold: int = Field(3, ge=1)
    cooldown_ms: int = Field(300_000, gt=0)
    success_threshold: int = Field(1, ge=1)


class MediaSettings(_Section):
    storage_root: Path = Path("/home/ubuntu/executor/workspace/backend/uploads")
    output_dir: str = "reversed"
    reverse_timeout_ms: int = Field(600_000, gt=0)
    ffprobe_timeout_ms: int = Field(30_000, gt=0)
    breaker: BreakerSettings = BreakerSettings()
    ffmpeg_path: str | None = None
    ffprobe_path: str | None = None
    # A 1080p30 reversal runs at about real time on 2 vCPUs: 300 s fits the 600 s timeout.
    max_duration_s: float = Field(300, gt=0)
    max_pixels: int = Field(1920 * 1080, gt=0)
    max_size_bytes: int = Field(1024**3, gt=0)
    # Decoded frames held per piece of a reversal (the rest of its memory is one decoder and one
    # encoder): 96 MiB is 31 frames of 1080p or 69 of 720p. Less re-decodes GOPs more often.
    memory_budget_mb: int = Field(96, gt=0)
    worker_memory_limit_mb: int = Field(1024, gt=0)
    concurrency: int = Field(1, ge=1)
    max_attempts: int = Field(3, ge=1)
    # Beyond this many queued jobs a submit is refused (HTTP 429): at 4 s a clip, 100 is
    # ~7 minutes of work, and each queued row is a promise the VM has to keep.
    max_queued: int = Field(100, ge=1)
    token: Token | None = Field(None, json_schema_extra=SECRET)
    # Where the CLI, the dashboard and the sandbox's backend reach the media job API. Unset:
    # the agent's /v1/media (one service on the VM); `media serve` (the standalone alias) is
    # http://127.0.0.1:<apps.media.port>.
    url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = Field(23, ge=0, le=51)
    audio_codec: str = "aac"
    audio_bitrate: str = "128k"


class HealthSettings(_Section):
    disk_warn_pct: float = Field(80, gt=0, le=100)
    disk_crit_pct: float = Field(90, gt=0, le=100)
    inode_warn_pct: float = Field(80, gt=0, le=100)
    inode_crit_pct: float = Field(90, gt=0, le=100)
    mem_available_warn_pct: float = Field(15, ge=0, le=100)
    mem_available_crit_pct: float = Field(5, ge=0, le=100)
    swap_used_warn_pct: float = Field(50, ge=0, le=100)
    swap_used_crit_pct: float = Field(90, ge=0, le=100)
    check_timeout_s: float = Field(5, gt=0)
    recover_timeout_s: float = Field(90, gt=0)
    recover_attempts: int = Field(3, ge=1)
    # Seconds before the second attempt of a recovery action; doubled for each one after.
    recover_backoff_s: float = Field(2, ge=0)
    # Who brings PM2 back: "systemd" (the unit pm2.unit), "pm2" (`pm2 resurrect`), or "auto"
    # (systemd when it is PID 1). Tests set "systemd" with a stand-in systemctl.
    supervisor: str = Field("auto", pattern="^(auto|systemd|pm2)$")
    systemctl: str = "systemctl"
    # An OOM kill in the kernel log this recent counts as evidence for `recover`.
    oom_lookback: str = "-1h"
    log_lines: int = Field(100, ge=1, le=100_000)


class DiagnoseSettings(_Section):
    # Which feature a killed process name belongs to, for the verdict's last sentence.
    attribution: dict[str, str] = {
        "ffmpeg": "vmkeeper's video reversal: see the media settings (media.*)",
        "ffprobe": "vmkeeper's media probe: see the media settings (media.*)",
    }
    # How long one kernel-log read (journalctl, dmesg) may take before it is killed.
    read_timeout_s: float = Field(300, gt=0)


class TelemetrySettings(_Section):
    # Telemetry out (issue 15): OTLP/HTTP to the VM's collector (fl-telemetry), never blocking.
    enabled: bool = True
    otlp_endpoint: str = Field("http://127.0.0.1:4318", pattern=r"^https?://[^\s/]+(/\S*)?$")
    environment: str = "production"
    # One export attempt's timeout; a one-shot command flushes for at most 2 s on top.
    export_timeout_s: float = Field(1.0, gt=0, le=30)
    metric_interval_s: float = Field(30, gt=0)


class FleetSettings(_Section):
    # An Ansible inventory (INI or YAML); `fleet -i` overrides it.
    inventory: Path | None = None
    forks: int = Field(10, ge=1, le=500)
    # The canary, then batch sizes: a count or a percentage of the hosts; the last one repeats.
    waves: list[int | str] = [1, "25%", "100%"]
    # Seconds a wave's hosts must stay healthy after their deploy before the next wave starts.
    soak_s: float = Field(30, ge=0)
    # Halt when this many hosts have failed (a count, or "N%" of the hosts): reached, not exceeded.
    halt_threshold: int | str = 1
    halt_policy: str = Field("hold", pattern="^(hold|converge)$")
    # How long one Ansible run on a wave may take before it is stopped.
    timeout_s: float = Field(1800, gt=0)
    # The vmkeeper program on each host.
    remote_bin: str = "vmkeeper"
    # `fleet plan deploy` calls a host not ready below this much free space (MB) where its
    # releases go: a Next.js release with node_modules is ~360 MB, and two are kept.
    min_free_mb: int = Field(1024, ge=0)


class AgentSettings(_Section):
    """`vmkeeper agent`: the HTTP command API (docs/architecture.md, "The agent")."""

    port: Port = 3900
    # The unix socket beside the TCP port (mode 0660); relative paths are under state_dir.
    socket: Path = Path("agent.sock")
    host: str = "127.0.0.1"  # a non-loopback host is refused unless tls_cert and tls_key are set
    tls_cert: Path | None = None
    tls_key: Path | None = None
    webhook_secret: Token | None = Field(None, json_schema_extra=SECRET)
    branch: str = "main"  # the branch whose pushes deploy
    poll_s: float = Field(0, ge=0)  # > 0: `git ls-remote` every poll_s seconds (no webhook)


class WatchSettings(_Section):
    """`vmkeeper watch`: the self-healing loop's cadence, hysteresis and recovery budget."""

    interval_s: float = Field(5, gt=0)  # cheap checks (HTTP, ports, PM2) every cycle
    # The heavy checks (disk, dump, Node, Apache's config, the OOM early warning) run every
    # Nth cycle, or every heavy_every_s seconds when set, whichever comes first; cycles between
    # carry their last result. 1: every check every cycle.
    heavy_every: int = Field(12, ge=1)
    heavy_every_s: float | None = Field(None, gt=0)
    down_after: int = Field(2, ge=1)  # N consecutive bad cycles open an incident
    up_after: int = Field(2, ge=1)  # M consecutive good cycles resolve it
    max_recoveries: int = Field(3, ge=1)  # K recoveries per window, then "gave_up"
    window_s: float = Field(3600, gt=0)
    backoff_s: float = Field(10, ge=0)  # doubled after each recovery that did not heal
    backoff_max_s: float = Field(600, ge=0)
    reset_after_s: float = Field(900, gt=0)  # healthy this long: the budget is full again
    deploy_timeout_s: float = Field(1800, gt=0)  # a deploy holding the lock longer is an incident
    memory_pressure_warn_pct: float = Field(10, ge=0, le=100)  # PSI some avg10
    memory_available_warn_pct: float = Field(10, ge=0, le=100)  # without PSI
    textfile: Path | None = None  # the Prometheus textfile written each cycle

    @field_validator("heavy_every_s")
    @classmethod
    def _heavy_cadence(cls, every: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval_s")  # declared above: already validated
        if every is not None and interval is not None and every < interval:
            raise ValueError(
                f"shorter than watch.interval_s ({interval:g}): heavy checks cannot run more "
                "often than every cycle; set it to at least interval_s, or heavy_every = 1")
        return every


class AlertsSettings(_Section):
    """Where `vmkeeper watch` tells a person: a webhook and/or SMTP email."""

    webhook_url: str | None = Field(None, json_schema_extra=SECRET)  # Slack/Discord URLs are keys
    webhook_format: str = Field("generic", pattern="^(generic|slack|discord)$")
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = Field(None, json_schema_extra=SECRET)
    smtp_from: str = "vmkeeper@localhost"
    smtp_to: list[str] = []
    timeout_s: float = Field(10, gt=0)
    retries: int = Field(3, ge=1)


class Settings(_Section):
    public_url: str = "http://tbp.flatlogic.app"
    node_major: int = Field(20, ge=1)
    state_dir: Path = Path("/var/lib/vmkeeper")
    log_dir: Path = Path("/var/log/vmkeeper")
    workspace: WorkspaceSettings = WorkspaceSettings()
    releases: ReleasesSettings = ReleasesSettings()
    apps: AppsSettings = AppsSettings()
    proxy: ProxySettings = ProxySettings()
    pm2: Pm2Settings = Pm2Settings()
    media: MediaSettings = MediaSettings()
    health: HealthSettings = HealthSettings()
    diagnose: DiagnoseSettings = DiagnoseSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    agent: AgentSettings = AgentSettings()
    watch: WatchSettings = WatchSettings()
    alerts: AlertsSettings = AlertsSettings()
    fleet: FleetSettings = FleetSettings()

    @property
    def frontend_workspace(self) -> Path:
        return self.workspace.path / self.workspace.frontend_dir

    def media_url(self) -> str:
        """The media job API's base URL (``media.url``, else the agent's /v1/media)."""
        if self.media.url:
            return self.media.url.rstrip("/")
        scheme = "https" if self.agent.tls_cert and self.agent.tls_key else "http"
        return f"{scheme}://127.0.0.1:{self.agent.port}/v1/media"

    def app_roles(self) -> dict[str, AppSettings]:
        """The PM2 apps the runbook expects, by role (media only if it has a name)."""
        return {
            "frontend": self.apps.frontend,
            "backend": self.apps.backend,
            "telemetry": self.apps.telemetry,
            "executor": self.apps.executor,
        }

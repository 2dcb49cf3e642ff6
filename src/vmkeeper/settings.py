"""The one Settings object, its defaults (the standard VM of the runbook) and its sources.

Sources, highest first: flags (``--set key=value``), environment variables (the runbook's own
names, then ``VMKEEPER_<KEY>``), a TOML file, the defaults. pydantic validates the merged
values; the loader is ours because every value must report *which* source it came from and the
runbook's environment names (``FRONTEND_RELEASES_KEEP``, ``PORT``…) are not prefix-shaped, which
pydantic-settings' sources cannot express per key.

Over 400 lines, not yet earned: it holds every section's model (wave 2 added agent, watch,
alerts, telemetry, fleet) beside the loader. The seam is known — section models in a
``settings_sections`` module, the loader and sources here — and is the next split to make.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from vmkeeper.config_file import read_toml
from vmkeeper.errors import SettingsError
from vmkeeper.tokens import check_token

DEFAULT_CONFIG_FILE = Path("/etc/vmkeeper/vmkeeper.toml")
SECRET_MASK = "***"

# Markers in a field's json_schema_extra, read by secret_keys(): masking follows the model, so a
# secret setting added later is masked by `config show`, bundles and errors without more code.
SECRET: JsonDict = {"secret": True}  # the whole value is a secret (media.token)
SECRET_ENTRIES: JsonDict = {"secret_entries": True}  # a table whose values may be (apps.*.env)


Port = Annotated[int, Field(ge=1, le=65535)]


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
    token: str | None = Field(None, json_schema_extra=SECRET)
    # Where the CLI, the dashboard and the sandbox's backend reach the media job API. Unset:
    # the agent's /v1/media (one service on the VM); `media serve` (the standalone alias) is
    # http://127.0.0.1:<apps.media.port>.
    url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = Field(23, ge=0, le=51)
    audio_codec: str = "aac"
    audio_bitrate: str = "128k"

    @field_validator("token")
    @classmethod
    def _guessable_token(cls, token: str | None) -> str | None:
        if token is not None:
            check_token(token)
        return token


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
    webhook_secret: str | None = Field(None, json_schema_extra=SECRET)
    branch: str = "main"  # the branch whose pushes deploy
    poll_s: float = Field(0, ge=0)  # > 0: `git ls-remote` every poll_s seconds (no webhook)

    @field_validator("webhook_secret")
    @classmethod
    def _guessable_secret(cls, secret: str | None) -> str | None:
        if secret is not None:
            check_token(secret)
        return secret


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


# The runbook's own environment names, mapped to the keys they set.
RUNBOOK_ENV: dict[str, str] = {
    "FRONTEND_RELEASES_KEEP": "releases.keep",
    "FFMPEG_REVERSE_TIMEOUT_MS": "media.reverse_timeout_ms",
    "FFPROBE_TIMEOUT_MS": "media.ffprobe_timeout_ms",
    "FFMPEG_BREAKER_FAILURE_THRESHOLD": "media.breaker.failure_threshold",
    "FFMPEG_BREAKER_COOLDOWN_MS": "media.breaker.cooldown_ms",
    "FFMPEG_BREAKER_SUCCESS_THRESHOLD": "media.breaker.success_threshold",
    "FRONT_PORT": "apps.frontend.port",
    "PORT": "apps.backend.port",
    "FFMPEG_PATH": "media.ffmpeg_path",
    "FFPROBE_PATH": "media.ffprobe_path",
}

ENV_PREFIX = "VMKEEPER_"


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str]  # dotted key -> "default" | "file:<path>" | "env:<NAME>" | "flag"
    config_file: Path | None


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    leaves: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        dotted = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves.extend(_leaf_fields(annotation, dotted + "."))
        else:
            leaves.append((dotted, field))
    return leaves


def _leaf_keys(model: type[BaseModel]) -> list[str]:
    return [key for key, _field in _leaf_fields(model)]


def leaf_keys() -> list[str]:
    """Every public dotted key (``apps.frontend.port``…), in declaration order."""
    return _leaf_keys(Settings)


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping) and not _is_dict_leaf(dotted):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _is_dict_leaf(key: str) -> bool:
    return key in _DICT_LEAVES


_DICT_LEAVES = {key for key in _leaf_keys(Settings) if key.endswith((".env", ".attribution"))}


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def _parse_env_value(key: str, raw: str) -> Any:
    """Environment values are strings; lists and tables are written as TOML values."""
    default = _default_of(key)
    if isinstance(default, (list, dict)):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
    return raw


def _default_of(key: str) -> Any:
    node: Any = Settings()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _find_config(config_path: Path | str | None, env: Mapping[str, str]) -> Path | None:
    if config_path:
        return Path(config_path)
    if env.get("VMKEEPER_CONFIG"):
        return Path(env["VMKEEPER_CONFIG"])
    if DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    return None


def load_settings(
    config_path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Merge defaults, the TOML file, the environment and flags; validate; say where each came from.

    Raises SettingsError naming the key, its source and what is expected on any bad value,
    unknown key, or unreadable file.
    """
    env = os.environ if env is None else env
    known = set(leaf_keys())
    values: dict[str, Any] = {}
    sources: dict[str, str] = dict.fromkeys(known, "default")

    path = _find_config(config_path, env)
    if path is not None:
        file_values = _flatten(read_toml(path))
        for key, value in file_values.items():
            if key not in known:
                raise SettingsError(
                    f"Unknown setting `{key}` in file:{path}: remove it or use one of the keys "
                    "`vmkeeper config show` lists."
                )
            # Relative paths in a config file are relative to the file, not to the caller.
            if isinstance(value, str) and isinstance(_default_of(key), Path):
                value = str((path.parent / value).resolve()) if not Path(value).is_absolute() \
                    else value
            values[key] = value
            sources[key] = f"file:{path}"

    env_map = {env_name(key): key for key in known}
    env_map.update(RUNBOOK_ENV)
    for name in sorted(env_map, key=lambda n: n in RUNBOOK_ENV):  # runbook names win
        if name in env and env[name] != "":
            key = env_map[name]
            values[key] = _parse_env_value(key, env[name])
            sources[key] = f"env:{name}"

    for key, value in (flags or {}).items():
        if key not in known:
            raise SettingsError(
                f"Unknown setting `{key}` given as a flag: use one of the keys "
                "`vmkeeper config show` lists."
            )
        values[key] = _parse_env_value(key, value) if isinstance(value, str) else value
        sources[key] = "flag"

    try:
        # Overlay onto every default: a file that sets only apps.frontend.port must keep the
        # frontend's name and the rest of its table.
        merged = _flatten(Settings().model_dump())
        merged.update(values)
        settings = Settings.model_validate(_nest(merged))
    except ValidationError as error:
        raise _invalid(error, sources) from None
    return LoadedSettings(settings=settings, sources=sources, config_file=path)


def _invalid(error: ValidationError, sources: Mapping[str, str]) -> SettingsError:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc)
    # A list or table value's error points inside it; name the setting itself.
    while key and key not in sources:
        key = key.rpartition(".")[0]
    source = sources.get(key, "default")
    entry = ".".join(loc)[len(key) + 1:]
    if key in secret_keys():
        shown = ""  # never echo a secret, not even a wrong one
    elif key in secret_entry_keys():
        shown = f" (entry {entry})" if entry else ""
    else:
        given = repr(first.get("input"))
        shown = f" ({given[:80]}…)" if len(given) > 80 else f" ({given})"
    return SettingsError(
        f"Setting `{key}` from {source} is invalid{shown}: {_expectation(first)}.")


def _expectation(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "greater_than_equal":
        return f"expected a number ≥ {ctx.get('ge')}"
    if kind == "greater_than":
        return f"expected a number > {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"expected a number ≤ {ctx.get('le')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "expected a whole number"
    if kind in ("float_parsing", "float_type"):
        return "expected a number"
    if kind == "extra_forbidden":
        return "this key is not a setting; remove it"
    if kind == "finite_number":
        return "expected a finite number (not inf or nan)"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "")))
    return f"expected {error.get('msg', 'a valid value').lower()}"


def effective(loaded: LoadedSettings) -> dict[str, Any]:
    """`config show --json`'s object (and the agent's `GET /v1/config`): the settings, secrets
    masked, and where each came from."""
    return {"settings": settings_as_dict(loaded.settings),
            "sources": dict(sorted(loaded.sources.items()))}


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """The settings as JSON values; secret settings (marked SECRET) shown as ``***`` when set,
    and the secret-looking entries of SECRET_ENTRIES tables masked by the redactor."""
    data = settings.model_dump(mode="json")
    for key in secret_keys():
        parent, name = _parent_of(data, key)
        if parent.get(name) is not None:
            parent[name] = SECRET_MASK
    entry_keys = secret_entry_keys()
    if entry_keys:
        from vmkeeper.redact import redact_json

        for key in entry_keys:
            parent, name = _parent_of(data, key)
            parent[name] = redact_json(parent[name])
    return data


def _parent_of(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    *parents, name = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    return node, name


def _marked_keys(marker: str) -> frozenset[str]:
    return frozenset(key for key, field in _leaf_fields(Settings)
                     if isinstance(field.json_schema_extra, dict)
                     and field.json_schema_extra.get(marker))


def secret_keys() -> frozenset[str]:
    """Dotted keys whose whole value is a secret (``media.token``)."""
    return _SECRET_KEYS


def secret_entry_keys() -> frozenset[str]:
    """Dotted keys of tables whose values may be secrets (``apps.backend.env``)."""
    return _SECRET_ENTRY_KEYS


_SECRET_KEYS = _marked_keys("secret")
_SECRET_ENTRY_KEYS = _marked_keys("secret_entries")

"""The one Settings object, its defaults (the standard VM of the runbook) and its sources.

Sources, highest first: flags (``--set key=value``), environment variables (the runbook's own
names, then ``VMKEEPER_<KEY>``), a TOML file, the defaults. pydantic validates the merged
values; the loader is ours because every value must report *which* source it came from and the
runbook's environment names (``FRONTEND_RELEASES_KEEP``, ``PORT``…) are not prefix-shaped, which
pydantic-settings' sources cannot express per key.

The section models (and their defaults) are :mod:`vmkeeper.settings_models`, re-exported here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from vmkeeper.config_file import read_toml
from vmkeeper.errors import SettingsError
from vmkeeper.settings_models import (  # the models, re-exported
    DEFAULT_CONFIG_FILE as DEFAULT_CONFIG_FILE,
)
from vmkeeper.settings_models import (
    SECRET as SECRET,
)
from vmkeeper.settings_models import (
    SECRET_ENTRIES as SECRET_ENTRIES,
)
from vmkeeper.settings_models import (
    SECRET_MASK as SECRET_MASK,
)
from vmkeeper.settings_models import (
    AgentSettings as AgentSettings,
)
from vmkeeper.settings_models import (
    AlertsSettings as AlertsSettings,
)
from vmkeeper.settings_models import (
    AppSettings as AppSettings,
)
from vmkeeper.settings_models import (
    AppsSettings as AppsSettings,
)
from vmkeeper.settings_models import (
    BreakerSettings as BreakerSettings,
)
from vmkeeper.settings_models import (
    DiagnoseSettings as DiagnoseSettings,
)
from vmkeeper.settings_models import (
    FleetSettings as FleetSettings,
)
from vmkeeper.settings_models import (
    HealthSettings as HealthSettings,
)
from vmkeeper.settings_models import (
    MediaSettings as MediaSettings,
)
from vmkeeper.settings_models import (
    Pm2Settings as Pm2Settings,
)
from vmkeeper.settings_models import (
    Port as Port,
)
from vmkeeper.settings_models import (
    ProxySettings as ProxySettings,
)
from vmkeeper.settings_models import (
    ReleasesSettings as ReleasesSettings,
)
from vmkeeper.settings_models import (
    Settings as Settings,
)
from vmkeeper.settings_models import (
    TelemetrySettings as TelemetrySettings,
)
from vmkeeper.settings_models import (
    WatchSettings as WatchSettings,
)
from vmkeeper.settings_models import (
    WorkspaceSettings as WorkspaceSettings,
)
from vmkeeper.settings_models import (
    _Section as _Section,
)

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

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from vmkeeper.errors import SettingsError
from vmkeeper.settings import Settings, load_settings


def test_defaults_are_the_standard_vm() -> None:
    settings = load_settings(env={}).settings
    assert settings.apps.frontend.port == 3001
    assert settings.apps.backend.port == 3000
    assert settings.apps.telemetry.port == 4317 and settings.apps.telemetry.extra_ports == [4318]
    assert settings.proxy.port == 80
    assert [a.name for a in settings.app_roles().values()] == [
        "frontend-dev", "backend-dev", "fl-telemetry", "fl-executor"]
    assert settings.apps.backend.env == {"NODE_ENV": "dev_stage"}
    assert settings.workspace.path == Path("/home/ubuntu/executor/workspace")
    assert settings.releases.root == Path("/home/ubuntu/executor/frontend-releases")
    assert settings.releases.keep == 2
    assert settings.releases.env_files == [
        ".env", ".env.local", ".env.production", ".env.production.local"]
    assert settings.releases.install_command == ["npm", "ci"]
    assert settings.releases.build_command == ["npm", "run", "build"]
    assert settings.releases.remove_paths == [".next", ".turbo", "build/cache"]
    assert settings.pm2.unit == "pm2-ubuntu"
    assert settings.media.reverse_timeout_ms == 600_000
    assert settings.media.ffprobe_timeout_ms == 30_000
    assert settings.node_major == 20


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("[releases]\nkeep = 3\n[pm2]\nunit = 'pm2-app'\n"
                      "[apps.frontend]\nport = 4001\n")
    loaded = load_settings(
        config, env={"FRONTEND_RELEASES_KEEP": "4", "FRONT_PORT": "5001"},
        flags={"apps.frontend.port": "6001"},
    )
    assert loaded.settings.releases.keep == 4
    assert loaded.sources["releases.keep"] == "env:FRONTEND_RELEASES_KEEP"
    assert loaded.settings.pm2.unit == "pm2-app"
    assert loaded.sources["pm2.unit"] == f"file:{config}"
    assert loaded.settings.apps.frontend.port == 6001
    assert loaded.sources["apps.frontend.port"] == "flag"
    assert loaded.sources["proxy.port"] == "default"


def test_vmkeeper_prefixed_env_sets_any_key() -> None:
    loaded = load_settings(env={"VMKEEPER_PM2_HOME": "/srv/pm2",
                                "VMKEEPER_RELEASES_ENV_FILES": '[".env"]'})
    assert loaded.settings.pm2.home == Path("/srv/pm2")
    assert loaded.settings.releases.env_files == [".env"]
    assert loaded.sources["pm2.home"] == "env:VMKEEPER_PM2_HOME"


def test_runbook_name_wins_over_prefixed_name() -> None:
    loaded = load_settings(env={"VMKEEPER_RELEASES_KEEP": "5", "FRONTEND_RELEASES_KEEP": "3"})
    assert loaded.settings.releases.keep == 3


def test_config_file_from_vmkeeper_config_env(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("public_url = 'https://example.test'\n")
    loaded = load_settings(env={"VMKEEPER_CONFIG": str(config)})
    assert loaded.settings.public_url == "https://example.test"
    assert loaded.config_file == config


@pytest.mark.parametrize(
    ("env", "key", "source", "expected"),
    [
        ({"FRONTEND_RELEASES_KEEP": "0"}, "releases.keep", "env:FRONTEND_RELEASES_KEEP", "≥ 1"),
        ({"FRONTEND_RELEASES_KEEP": "abc"}, "releases.keep", "env:FRONTEND_RELEASES_KEEP",
         "whole number"),
        ({"FFMPEG_REVERSE_TIMEOUT_MS": "-1"}, "media.reverse_timeout_ms",
         "env:FFMPEG_REVERSE_TIMEOUT_MS", "> 0"),
        ({"FFPROBE_TIMEOUT_MS": "0"}, "media.ffprobe_timeout_ms", "env:FFPROBE_TIMEOUT_MS", "> 0"),
        ({"FFMPEG_BREAKER_FAILURE_THRESHOLD": "x"}, "media.breaker.failure_threshold",
         "env:FFMPEG_BREAKER_FAILURE_THRESHOLD", "whole number"),
        ({"FRONT_PORT": "70000"}, "apps.frontend.port", "env:FRONT_PORT", "≤ 65535"),
    ],
)
def test_bad_env_value_names_key_source_and_expectation(
    env: dict[str, str], key: str, source: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env=env)
    message = str(error.value)
    assert f"`{key}`" in message and source in message and expected in message
    assert error.value.exit_code == 2


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[releases]\nkepp = 3\n")
    with pytest.raises(SettingsError, match=r"Unknown setting `releases.kepp` in file:"):
        load_settings(config, env={})


def test_toml_syntax_error_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[releases\nkeep = 3\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config, env={})


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[releases]\nkeep = 0\n")
    with pytest.raises(SettingsError, match=f"from file:{config}"):
        load_settings(config, env={})


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "none.toml", env={})


def test_relative_paths_in_file_are_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[releases]\nroot = 'rel'\n")
    assert load_settings(config, env={}).settings.releases.root == tmp_path / "rel"


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.releases.keep = 5  # type: ignore[misc]


def test_config_show_json_has_settings_and_dotted_sources(
    cli: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTEND_RELEASES_KEEP", "3")
    run = cli("config", "show", "--json")
    assert run.code == 0  # type: ignore[attr-defined]
    data = json.loads(run.stdout)  # type: ignore[attr-defined]
    assert data["settings"]["releases"]["keep"] == 3
    assert data["sources"]["releases.keep"] == "env:FRONTEND_RELEASES_KEEP"
    assert data["sources"]["apps.frontend.port"] == "default"


def test_config_show_bad_value_exits_2_with_one_sentence(
    cli: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTEND_RELEASES_KEEP", "0")
    run = cli("config", "show")
    assert run.code == 2  # type: ignore[attr-defined]
    assert "FRONTEND_RELEASES_KEEP" in run.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in run.stderr  # type: ignore[attr-defined]
    assert run.stdout == ""  # type: ignore[attr-defined]


def test_set_flag_source_is_flag(cli: Callable[..., object]) -> None:
    run = cli("--set", "releases.keep=5", "config", "show", "--json")
    data = json.loads(run.stdout)  # type: ignore[attr-defined]
    assert data["settings"]["releases"]["keep"] == 5
    assert data["sources"]["releases.keep"] == "flag"


def test_unknown_command_exits_2(cli: Callable[..., object]) -> None:
    run = cli("no-such-command")
    assert run.code == 2  # type: ignore[attr-defined]

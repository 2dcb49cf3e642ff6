"""Settings that do not leak or crash: secret settings masked, weak tokens refused at start,
no secret echoed in an error, finite numbers, valid ports, and only sane config files read."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRun
from vmkeeper.config_file import CONFIG_MAX_BYTES
from vmkeeper.errors import SettingsError
from vmkeeper.settings import (
    Settings,
    leaf_keys,
    load_settings,
    secret_entry_keys,
    secret_keys,
    settings_as_dict,
)

STRONG = "Kq3vX9mZpL2wR7tY5nB8cD4fG6hJ1sA0"  # 32 mixed characters: ~190 bits
_SECRET_WORDS = ("token", "secret", "password", "passwd", "credential", "api_key", "private")


def test_secret_settings_are_marked_in_the_model() -> None:
    assert "media.token" in secret_keys()
    assert {"apps.backend.env", "apps.frontend.env"} <= secret_entry_keys()
    # A future key named like a secret must be marked too, or it would print in plain text.
    for key in leaf_keys():
        if any(word in key.rsplit(".", 1)[-1] for word in _SECRET_WORDS):
            assert key in secret_keys() | secret_entry_keys(), key


def test_config_show_masks_the_token_in_both_renderings(cli: Callable[..., CliRun]) -> None:
    for extra in ([], ["--json"]):
        run = cli("--set", f"media.token={STRONG}", "config", "show", *extra)
        assert run.code == 0, run
        assert STRONG not in run.stdout and "***" in run.stdout
    data = json.loads(cli("config", "show", "--json").stdout)
    assert data["settings"]["media"]["token"] is None  # unset stays visibly unset


def test_config_show_masks_secret_entries_of_app_env_and_keeps_plain_ones(
    cli: Callable[..., CliRun],
) -> None:
    run = cli("--set", 'apps.backend.env={DB_PASSWORD="Zr8#kq!2Lm_77", NODE_ENV="dev_stage"}',
              "config", "show", "--json")
    env = json.loads(run.stdout)["settings"]["apps"]["backend"]["env"]
    assert "Zr8#kq!2Lm_77" not in run.stdout
    assert env["NODE_ENV"] == "dev_stage"


def test_settings_as_dict_masks_for_the_bundle_too() -> None:
    settings = load_settings(env={}, flags={"media.token": STRONG}).settings
    assert STRONG not in json.dumps(settings_as_dict(settings))


@pytest.mark.parametrize("token", ["short-token", "   ", "\t\n", "0" * 40, "ab" * 32,
                                   "deadbeefdeadbeef", "tøken-with-ünicode-ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ",
                                   "token with spaces in it 1234567890"])
def test_weak_or_whitespace_tokens_are_refused_naming_the_key_not_the_value(token: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(env={"VMKEEPER_MEDIA_TOKEN": token})
    message = str(refused.value)
    assert "`media.token`" in message and "env:VMKEEPER_MEDIA_TOKEN" in message
    if token.strip():
        assert token not in message


@pytest.mark.parametrize("token", [STRONG, "0123456789abcdef" * 2, "Zm9vYmFyYmF6cXV4MTIzNA"])
def test_random_tokens_of_128_bits_are_accepted(token: str) -> None:
    assert load_settings(env={"VMKEEPER_MEDIA_TOKEN": token}).settings.media.token == token


def test_a_bad_app_env_value_names_the_entry_not_the_value(tmp_path: Path) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("[apps.backend.env]\nDB_PASSWORD = 48151623421\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, env={})
    assert "apps.backend.env" in str(refused.value) and "DB_PASSWORD" in str(refused.value)
    assert "48151623421" not in str(refused.value)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_infinite_and_nan_numbers_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="finite number"):
        load_settings(env={}, flags={"health.check_timeout_s": value})


def test_no_float_setting_accepts_infinity() -> None:
    floats = [key for key in leaf_keys()
              if isinstance(_default(key), float) or key.endswith("_s")]
    assert floats
    for key in floats:
        with pytest.raises(SettingsError):
            load_settings(env={}, flags={key: "inf"})


def _default(key: str) -> object:
    node: object = Settings()
    for part in key.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("flag", ["apps.telemetry.extra_ports=[99999]", "proxy.port=99999",
                                  "apps.media.port=0"])
def test_ports_outside_1_to_65535_are_refused(flag: str) -> None:
    key, _, value = flag.partition("=")
    with pytest.raises(SettingsError, match=f"`{key}`"):
        load_settings(env={}, flags={key: value})


def test_media_serve_port_99999_is_a_usage_error(cli: Callable[..., CliRun]) -> None:
    run = cli("--set", f"media.token={STRONG}", "media", "serve", "--port", "99999")
    assert run.code == 2 and "--port" in run.stderr and "unexpectedly" not in run.stderr


def test_config_from_dev_zero_is_refused_without_reading_it(cli: Callable[..., CliRun]) -> None:
    run = cli("--config", "/dev/zero", "config", "show")
    assert run.code == 2 and "not a regular file" in run.stderr


def test_a_fifo_as_config_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "vmkeeper.toml"
    os.mkfifo(fifo)
    with pytest.raises(SettingsError, match="not a regular file"):
        load_settings(fifo, env={})


def test_a_huge_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("# padding\n" * (CONFIG_MAX_BYTES // 10 + 10))
    with pytest.raises(SettingsError, match="larger than"):
        load_settings(config, env={})


def test_a_non_utf8_config_is_one_sentence(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_bytes(b'public_url = "http://\xff\xfe"\n')
    run = cli("--config", str(config), "config", "show")
    assert run.code == 2 and "not UTF-8" in run.stderr and "unexpectedly" not in run.stderr


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_as_root_a_config_others_can_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("[pm2]\nbin = '/tmp/evil'\n")
    config.chmod(mode)
    if mode & stat.S_IWGRP and not mode & stat.S_IWOTH and os.getgid() == 0:
        os.chown(config, -1, 4242)  # group write by a group that is not root's
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(SettingsError, match="other than its owner and root"):
        load_settings(config, env={})


def test_as_root_a_private_config_is_read_and_others_may_read_any_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("[releases]\nkeep = 3\n")
    config.chmod(0o644)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert load_settings(config, env={}).settings.releases.keep == 3
    config.chmod(0o666)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert load_settings(config, env={}).settings.releases.keep == 3

"""`vmkeeper bundle` and `vmkeeper redact` against the sandbox's real PM2, whose apps were
started with secrets in their environment: PM2 wrote them into its real jlist and dump.pm2."""

from __future__ import annotations

import base64
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import CliRun, SandboxHandle
from vmkeeper.sandbox.layout import PLANTED_SECRETS

pytestmark = pytest.mark.slow

EXPECTED_APPS = {"frontend-dev", "backend-dev", "fl-telemetry", "fl-executor"}


def _secrets(sandbox: SandboxHandle) -> dict[str, str]:
    secrets = dict(PLANTED_SECRETS)
    if sandbox.settings.media.token:
        secrets["MEDIA_TOKEN"] = sandbox.settings.media.token
    return secrets


def _leaking_forms(value: str) -> list[str]:
    """The value as a file might carry it without its name: as is, URL-encoded, base64."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value)}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms.add(encoded.decode().rstrip("="))
    return sorted(forms)


def _shape(value: Any) -> Any:
    """The structure of a JSON document with every leaf collapsed (a marker replaces a leaf)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return "leaf"


def _assert_no_secret(files: dict[str, str], secrets: dict[str, str]) -> None:
    for name, text in files.items():
        for key, value in secrets.items():
            for form in _leaking_forms(value):
                assert form not in text, f"{key} leaked into {name} as {form!r}"


@pytest.fixture(scope="module")
def bundle_files(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory,
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    # The CLI in a subprocess-free, in-process run would need the function-scoped `cli` fixture;
    # drive main() directly for one shared bundle.
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from vmkeeper.cli.main import main

    out = tmp_path_factory.mktemp("bundle") / "incident.tar.gz"
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = main(["--config", str(sandbox.config), "bundle", "-o", str(out), "--json"])
    assert code == 0, stderr.getvalue()
    result = json.loads(stdout.getvalue())
    files: dict[str, str] = {}
    with tarfile.open(out, "r:gz") as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[member.name.split("/", 1)[1]] = handle.read().decode()
    return result, files


def test_bundle_holds_the_real_jlist_and_dump_as_valid_json(
        bundle_files: tuple[dict[str, Any], dict[str, str]], sandbox: SandboxHandle) -> None:
    result, files = bundle_files
    assert {"pm2/jlist.json", "pm2/dump.pm2", "health.json", "status.json", "settings.json",
            "versions.json", "host/df-h.txt", "host/df-ih.txt", "host/free.txt",
            "host/listening.txt", "manifest.json"} <= set(files)
    jlist = json.loads(files["pm2/jlist.json"])
    dump = json.loads(files["pm2/dump.pm2"])
    assert {entry["name"] for entry in jlist} >= EXPECTED_APPS
    assert {entry["name"] for entry in dump} >= EXPECTED_APPS
    # Redacted, yet still useful: the runbook's jq query on the frontend works.
    frontend = next(e for e in jlist if e["name"] == "frontend-dev")["pm2_env"]
    front_port = frontend.get("FRONT_PORT") or frontend["env"]["FRONT_PORT"]
    assert front_port == str(sandbox.layout.ports.frontend)
    assert frontend["pm_cwd"].startswith(str(sandbox.layout.releases))
    assert "«redacted:password»" in files["pm2/jlist.json"]
    versions = json.loads(files["versions.json"])
    assert versions["node"].startswith("v") and versions["pm2"]
    # Every app's logs: the sandbox's apps have written at least their start lines.
    assert any(name.startswith("logs/backend-dev") for name in files)
    names = [f["name"] for f in result["files"]]
    assert names[0] == "manifest.json"
    assert names[1:] == [f["name"] for f in json.loads(files["manifest.json"])["files"]]
    assert set(names) == set(files)
    assert result["path"].endswith("incident.tar.gz")


def test_no_planted_secret_appears_in_any_file_of_the_bundle(
        bundle_files: tuple[dict[str, Any], dict[str, str]], sandbox: SandboxHandle) -> None:
    _result, files = bundle_files
    _assert_no_secret(files, _secrets(sandbox))


def test_bundle_says_why_it_skipped_what_it_could_not_collect(
        bundle_files: tuple[dict[str, Any], dict[str, str]]) -> None:
    result, files = bundle_files
    manifest = json.loads(files["manifest.json"])
    assert manifest["skipped"] == result["skipped"]
    for skipped in result["skipped"]:
        assert skipped["source"] and skipped["reason"]


def test_redact_of_the_real_dump_keeps_structure_and_non_secrets_and_drops_secrets(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    dump_path = sandbox.pm2.dump_path
    original = json.loads(dump_path.read_text())
    # The dump is only a real test if PM2 really wrote the planted secrets into it.
    assert PLANTED_SECRETS["DB_PASSWORD"] in dump_path.read_text()

    run = sandbox.vmkeeper(cli, "redact", str(dump_path))
    assert run.code == 0, run.stderr
    redacted = json.loads(run.stdout)
    assert _shape(redacted) == _shape(original)
    _assert_no_secret({"stdout": run.stdout}, _secrets(sandbox))

    for before, after in zip(original, redacted, strict=True):
        assert after["name"] == before["name"]
        for key in ("pm_cwd", "pm_exec_path", "pm_out_log_path", "exec_interpreter"):
            if key in before:
                assert after[key] == before[key], key
        for key in ("NODE_ENV", "PORT", "FRONT_PORT", "BACKEND_PORT", "OTLP_GRPC_PORT",
                    "NEXT_TELEMETRY_DISABLED", "BACKEND_URL"):
            for holder_before, holder_after in ((before, after),
                                                (before.get("env", {}), after.get("env", {}))):
                if key in holder_before:
                    assert holder_after[key] == holder_before[key], key


def test_redact_check_on_the_real_dump_exits_1_and_never_prints_a_value(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    run = sandbox.vmkeeper(cli, "redact", "--check", str(sandbox.pm2.dump_path))
    assert run.code == 1
    kinds = {line.split("\t")[0] for line in run.stdout.splitlines()}
    assert {"password", "secret", "token"} <= kinds
    _assert_no_secret({"stdout": run.stdout}, _secrets(sandbox))


def test_bundle_file_is_private(bundle_files: tuple[dict[str, Any], dict[str, str]]) -> None:
    result, _files = bundle_files
    assert Path(result["path"]).stat().st_mode & 0o777 == 0o600

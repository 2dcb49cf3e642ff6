"""The redactor on real-shaped PM2 dumps and jlists, env files and log text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmkeeper.cli.main import main
from vmkeeper.redact import (
    DocumentKind,
    detect_kind,
    redact_document,
    redact_file,
    redact_json,
    redact_text,
)

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLez"
               "V6ffAt0gunVTLw7onLRnrq0\n/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFcz"
               "\n-----END RSA PRIVATE KEY-----")
# Planted in the environment of the shell that "started PM2": each must vanish everywhere.
SECRETS = {
    "DB_PASSWORD": "Tr0ub4dor&3-db",
    "SMTP_PASS": "smtp-pa55-word",
    "SMTP_USER": "mailer@tbp.flatlogic.app",
    "JWT_SECRET": "jwt-5ecret-value-9f8e7d",
    "SESSION_SECRET": "keyboard-cat-session-77",
    "CLOUDFLARE_TUNNEL_TOKEN": "eyJhIjoiZjFhMmIzYzQiLCJ0IjoiNWU2ZjdhOGIiLCJzIjoiOWMwZDFlMmYifQ==",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "STRIPE_KEY": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "GITHUB_PAT": "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB",
    "GOOGLE_OAUTH_CREDENTIALS": "client-9876-credential-blob",
    "PASSWORD_SALT": "salt-8d7c6b5a",
}
VALUE_SECRETS = {
    "DATABASE_URL": ("postgres://app:Pg-pa55w0rd@db.internal:5432/app", "Pg-pa55w0rd"),
    "CALLBACK_HEADER": (f"Bearer {JWT}", JWT),
    "DEPLOY_NOTE": ("ssh key below\n" + PRIVATE_KEY, "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0t"),
    "AWS_ACCESS_KEY_ID_HINT": ("uses AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
}
PLAIN = {
    "NODE_ENV": "dev_stage", "PORT": "3000", "FRONT_PORT": "3001", "HOME": "/home/ubuntu",
    "PWD": "/home/ubuntu/executor/workspace/frontend", "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOSTNAME": "tbp-vm-01", "PM2_HOME": "/home/ubuntu/.pm2", "JWT_EXPIRES_IN": "6h",
    "NEXTAUTH_URL": "https://tbp.flatlogic.app", "SESSION_COOKIE_NAME": "sid",
    "FFMPEG_REVERSE_TIMEOUT_MS": "600000", "LANG": "C.UTF-8", "SHLVL": "1",
}


def _shell_env() -> dict[str, str]:
    env = dict(PLAIN)
    env.update(SECRETS)
    env.update({key: value for key, (value, _secret) in VALUE_SECRETS.items()})
    return env


def _pm2_env(name: str, pm_id: int, cwd: str, port: str) -> dict[str, Any]:
    # PM2 puts the starting shell's whole environment under `env` and flat on pm2_env itself.
    shell = _shell_env()
    entry: dict[str, Any] = dict(shell)
    entry.update({
        "name": name, "pm_id": pm_id, "namespace": "default", "exec_mode": "fork_mode",
        "exec_interpreter": "none", "pm_exec_path": "/usr/bin/npm", "pm_cwd": cwd, "cwd": cwd,
        "args": ["run", "start"], "node_args": [], "instances": 1, "autorestart": True,
        "vizion": True, "status": "online", "pm_uptime": 1781234567890, "restart_time": 2,
        "unstable_restarts": 0, "version": "0.1.0", "node_version": "20.11.1",
        "pm_out_log_path": f"/home/ubuntu/.pm2/logs/{name}-out.log",
        "pm_err_log_path": f"/home/ubuntu/.pm2/logs/{name}-error.log",
        "pm_pid_path": f"/home/ubuntu/.pm2/pids/{name}-{pm_id}.pid",
        "unique_id": "3f1c2b9a-8d7e-4f60-9a1b-2c3d4e5f6a7b", "km_link": False,
        "instance_var": "NODE_APP_INSTANCE", "created_at": 1781234000000,
        "axm_options": {"isModule": False, "metrics": {"http": False}, "tracing": {"enabled": False}},
        "env": dict(shell, FRONT_PORT=port, name=name),
    })
    return entry


def _jlist() -> list[dict[str, Any]]:
    apps = [("frontend-dev", 0, "/home/ubuntu/executor/frontend-releases/20260612T031415Z-ab12cd3/frontend", "3001"),
            ("backend-dev", 1, "/home/ubuntu/executor/workspace/backend", "3000")]
    return [
        {"pid": 4100 + pm_id, "name": name, "pm_id": pm_id, "monit": {"memory": 123456789, "cpu": 0.4},
         "pm2_env": _pm2_env(name, pm_id, cwd, port)}
        for name, pm_id, cwd, port in apps
    ]


def _dump() -> list[dict[str, Any]]:
    return [app["pm2_env"] for app in _jlist()]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__ if not isinstance(value, str) else "str"


def _all_secret_values() -> list[str]:
    return list(SECRETS.values()) + [secret for _value, secret in VALUE_SECRETS.values()]


@pytest.mark.parametrize("build", [_jlist, _dump], ids=["jlist", "dump.pm2"])
def test_pm2_document_keeps_its_structure_and_loses_every_secret(build: Any) -> None:
    original = build()
    text = json.dumps(original)
    result = redact_document(text)
    assert result.kind is DocumentKind.JSON
    redacted = json.loads(result.text)
    assert _shape(redacted) == _shape(original)
    for secret in _all_secret_values():
        assert secret not in result.text, secret
    for app in redacted:
        env = app.get("pm2_env", app)
        for where in (env, env["env"]):
            for key, value in PLAIN.items():
                assert where[key] == (value if key != "FRONT_PORT" or where is env
                                      else env["env"]["FRONT_PORT"]), key
            assert where["FRONT_PORT"] in ("3000", "3001")
            assert where["DB_PASSWORD"] == "«redacted:password»"
            assert where["DATABASE_URL"] == "postgres://app:«redacted:password»@db.internal:5432/app"
            assert where["SMTP_USER"] == "«redacted:credentials»"
            assert where["CLOUDFLARE_TUNNEL_TOKEN"] == "«redacted:tunnel-credentials»"
        assert env["pm_cwd"].startswith("/home/ubuntu/executor/")
        assert env["name"] in ("frontend-dev", "backend-dev")
        assert env["node_version"] == "20.11.1"


def test_redact_json_returns_a_new_object_and_keeps_non_strings() -> None:
    original = _jlist()
    redacted = redact_json(original)
    assert original[0]["pm2_env"]["DB_PASSWORD"] == SECRETS["DB_PASSWORD"]
    assert redacted[0]["pid"] == 4100
    assert redacted[0]["pm2_env"]["autorestart"] is True
    assert redacted[0]["monit"] == {"memory": 123456789, "cpu": 0.4}


def test_env_file_keeps_keys_order_quotes_and_comments() -> None:
    text = (
        "# backend env\nNODE_ENV=dev_stage\nPORT=3000\nDB_PASSWORD='Tr0ub4dor&3-db'\n"
        'export JWT_SECRET="jwt-5ecret-value-9f8e7d"\n\nDATABASE_URL=postgres://app:Pg-pa55w0rd@db:5432/app\n'
        "SMTP_SECURE=true\n"
    )
    result = redact_document(text)
    assert result.kind is DocumentKind.ENV
    assert result.text.splitlines() == [
        "# backend env", "NODE_ENV=dev_stage", "PORT=3000", "DB_PASSWORD='«redacted:password»'",
        'export JWT_SECRET="«redacted:secret»"', "",
        "DATABASE_URL=postgres://app:«redacted:password»@db:5432/app", "SMTP_SECURE=true",
    ]


def test_text_keeps_its_lines_even_around_a_private_key() -> None:
    text = f"start\nkey follows\n{PRIVATE_KEY}\nAuthorization: Bearer {JWT}\npid 4242 on :3000\nend\n"
    out = redact_text(text)
    assert out.count("\n") == text.count("\n")
    assert "MIIEow" not in out and JWT not in out
    pid_line = text.splitlines().index("pid 4242 on :3000")
    assert out.splitlines()[pid_line] == "pid 4242 on :3000"
    assert out.splitlines()[0] == "start"
    assert "«redacted:private-key»" in out


@pytest.mark.parametrize(
    "line",
    [
        "App [backend-dev:1] online pid 4242 port 3000 node v20.11.1 /home/ubuntu/.pm2/logs/x.log",
        "GET /api/auth/me 401 12.3 ms - 24",
        "Apache/2.4.58 (Ubuntu) Server at tbp.flatlogic.app Port 80",
        "release 20260612T031415Z-ab12cd3f4e5d6c7b8a9 activated",
        "session started for user ubuntu from 10.0.0.5",
    ],
)
def test_what_is_not_secret_stays(line: str) -> None:
    assert redact_text(line) == line


@pytest.mark.parametrize(
    ("line", "kind", "secret"),
    [
        ("curl -H 'Authorization: Bearer abcdefghijklmnop1234567890'", "bearer-token",
         "abcdefghijklmnop1234567890"),
        ("connecting to mongodb+srv://admin:M0ng0pw@cluster0.example.net/db", "password", "M0ng0pw"),
        ("node app.js --db-password=hunter2hunter2", "password", "hunter2hunter2"),
        (f"token {JWT}", "jwt", JWT),
        ("aws creds AKIAIOSFODNN7EXAMPLE", "aws-key", "AKIAIOSFODNN7EXAMPLE"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc charged", "stripe-key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("webhook secret is q8ZxN2vL5tR7wY1kP4mB9cD3fG6hJ0sA", "high-entropy", "q8ZxN2vL5tR7wY1kP4mB9cD3fG6hJ0sA"),
    ],
)
def test_secret_values_are_found_in_free_text(line: str, kind: str, secret: str) -> None:
    result = redact_document(line)
    assert secret not in result.text
    assert kind in {f.kind for f in result.findings}


def test_redact_file_detects_the_kind(tmp_path: Path) -> None:
    dump = tmp_path / "dump.pm2"
    dump.write_text(json.dumps(_dump()))
    env = tmp_path / ".env"
    env.write_text("API_KEY=abc123def456\nPORT=3001\n")
    assert json.loads(redact_file(dump))[0]["env"]["JWT_SECRET"] == "«redacted:secret»"
    assert redact_file(env) == "API_KEY=«redacted:api-key»\nPORT=3001\n"
    assert detect_kind("plain log line\nanother") is DocumentKind.TEXT


def test_cli_check_groups_each_secret_into_one_line_never_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "dump.pm2"
    dump.write_text(json.dumps(_dump()))
    assert main(["redact", str(dump), "--check"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    # DB_PASSWORD sits in 2 apps, flat on the entry and under env: one line that says so.
    assert [ln for ln in lines if "\tDB_PASSWORD\t" in ln] == [
        "password\tDB_PASSWORD\t4 places: 2 apps × 2 (top level, env)"]
    assert len(lines) == len({ln.split("\t")[1] for ln in lines})
    for secret in _all_secret_values():
        assert secret not in out


def test_cli_check_json_lists_groups_with_every_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "dump.pm2"
    dump.write_text(json.dumps(_dump()))
    assert main(["redact", str(dump), "--check", "--json"]) == 1
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["kind"] == "json"
    by_name = {group["name"]: group for group in report["findings"]}
    assert by_name["DB_PASSWORD"]["count"] == 4 and by_name["DB_PASSWORD"]["apps"] == 2
    assert "$[1].env.DB_PASSWORD" in by_name["DB_PASSWORD"]["locations"]
    assert report["count"] == sum(group["count"] for group in report["findings"])
    for secret in _all_secret_values():
        assert secret not in out


def test_cli_check_json_on_a_clean_file_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / ".env"
    clean.write_text("NODE_ENV=dev_stage\nMAX_TOKENS=4096\n")
    assert main(["redact", str(clean), "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": "env", "count": 0, "findings": []}


def test_cli_check_on_a_clean_file_exits_0(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    clean = tmp_path / ".env"
    clean.write_text("NODE_ENV=dev_stage\nPORT=3000\n")
    assert main(["redact", str(clean), "--check"]) == 0
    assert "nothing to redact" in capsys.readouterr().out


def test_cli_writes_the_redacted_document(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "dump.pm2"
    dump.write_text(json.dumps(_dump()))
    assert main(["redact", str(dump)]) == 0
    out = capsys.readouterr().out
    assert len(json.loads(out)) == 2


@pytest.mark.parametrize("target", ["missing", "."])
def test_cli_bad_input_is_exit_2_without_traceback(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["redact", str(tmp_path / target)]) == 2
    assert "Traceback" not in capsys.readouterr().err

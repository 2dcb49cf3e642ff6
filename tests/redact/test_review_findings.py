"""Each hole the security review found in the redactor (issue 11), as a case that failed before.

The values are random-looking but invented; none is a real credential.
"""

from __future__ import annotations

import json

import pytest

from vmkeeper.redact import DocumentKind, key_kind, redact_document

TUNNEL = "eyJhIjoiOWYzYjJjMWQwZTlmOGE3YiIsInQiOiI0YjNjMmQxZSIsInMiOiJOMlF3T1RJME1HWXRaRGczWlMwIn0"


@pytest.mark.parametrize(
    ("document", "secret"),
    [
        # a secret as the argv element after a flag
        (json.dumps([{"name": "tunnel", "pm2_env": {"args": ["tunnel", "run", "--token", TUNNEL]}}]),
         TUNNEL),
        (json.dumps({"args": ["--password", "Xk9#mQ2vLp"]}), "Xk9#mQ2vLp"),
        ("worker --secret S3cr3tW0rkerValue --queue mail", "S3cr3tW0rkerValue"),
        ("/usr/bin/mysql -h db -uroot -pMyS9lPass app", "MyS9lPass"),
        # URL userinfo as URL parsers read it
        ("REDIS_URL=redis://:R3disPw0rd@cache:6379/0", "R3disPw0rd"),
        ("amqp://svc:p@ss@rabbit:5672/", "p@ss"),
        ("postgresql://app:pa/ss%word@db:5432/app", "pa/ss%word"),
        # provider formats
        ("GH=github_pat_11AAAAAAA0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012",
         "github_pat_11AAAAAAA0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012"),
        ("notify https://discord.com/api/webhooks/112233445566778899/AbC-dEf_GhIjKlMnOpQrStUvWxYz0123456789",
         "AbC-dEf_GhIjKlMnOpQrStUvWxYz0123456789"),
        # key names by word parts
        ("DB_PASSWORDS=first9x,second8y", "first9x"),
        ("ADMIN_PASSKEY=Pk-7712-aa", "Pk-7712-aa"),
        (json.dumps({"passwordHash": "$2b$10$N9qo8uLOickgx2ZMRZoMye"}), "N9qo8uLOickgx2ZMRZoMye"),
        # PEM keys truncated, or with BEGIN/END lines that differ
        ("key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lg\nOEePzNm0tRg",
         "OEePzNm0tRg"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAmismatched0\n-----END PRIVATE KEY-----",
         "MIIEowIBAAKCAQEAmismatched0"),
        # base64 of KEY=secret under a neutral key
        ("BOOT=REJfUEFTU1dPUkQ9dHdvV29yZHM5OQ==", "REJfUEFTU1dPUkQ9dHdvV29yZHM5OQ=="),
        # text mode: values with spaces and commas, lowercase bearer, escaped keys
        ('log {"password":"two words, and more"}', "words, and more"),
        ("upstream authorization: bearer abcDEF0123456789ghijKL", "abcDEF0123456789ghijKL"),
        ('{"p\\u0061ssword": "Esc4pedPw"} trailing text', "Esc4pedPw"),
    ],
)
def test_review_finding_is_hidden(document: str, secret: str) -> None:
    assert secret not in redact_document(document).text


def test_pm2_banner_before_json_keeps_the_json_path() -> None:
    text = ("[PM2] Spawning PM2 daemon with pm2_home=/home/ubuntu/.pm2\n"
            "[PM2] PM2 Successfully daemonized\n"
            + json.dumps([{"name": "a", "pm2_env": {"env": {"DB_PASSWORD": "two words pw"}}}]))
    result = redact_document(text)
    assert result.kind is DocumentKind.JSON
    assert result.text.startswith("[PM2] Spawning PM2 daemon")
    body = json.loads(result.text.split("\n", 2)[2])
    assert body[0]["pm2_env"]["env"]["DB_PASSWORD"] == "«redacted:password»"


def test_a_bom_before_json_keeps_the_json_path() -> None:
    result = redact_document("\ufeff" + json.dumps({"SECRET": "bom-hidden-9"}))
    assert result.kind is DocumentKind.JSON
    assert result.text.startswith("\ufeff")
    assert json.loads(result.text[1:]) == {"SECRET": "«redacted:secret»"}


@pytest.mark.parametrize(
    ("key", "value"),
    [("MAX_TOKENS", "4096"), ("TOKEN_EXPIRY", "3600"), ("AUTH_RETRIES", "3"),
     ("SECRET_ROTATION_DAYS", "30"), ("SSH_AUTH_SOCK", "/tmp/ssh-AbC123/agent.4242"),
     ("TOKEN_ISSUER_ID", "42"), ("OPENAI_TOKENS", "8192"), ("SECRET_ROTATION", "30d"),
     ("DB_PASSWORD_FILE", "/run/secrets/db_password"), ("DB_PASSWORD", "${DB_PASSWORD}")],
)
def test_plain_values_under_secret_ish_names_stay(key: str, value: str) -> None:
    env = f"{key}={value}\nPORT=3000\n"
    assert redact_document(env).text == env
    dump = json.dumps([{"pm2_env": {key: value, "env": {key: value}}}])
    assert redact_document(dump).text == dump


@pytest.mark.parametrize(
    ("key", "kind"),
    [("DB_PASSWORDS", "password"), ("ADMIN_PASSKEY", "password"), ("passwordHash", "password"),
     ("x-api-key", "api-key"), ("npm_config__authToken", "token"), ("clientSecret", "secret"),
     ("CLOUDFLARE_TUNNEL_TOKEN", "tunnel-credentials"), ("SMTP_USER", "credentials"),
     ("MAX_TOKENS", None), ("PUBLIC_KEY", None), ("PASSENGER_APP_ENV", None),
     ("TOKENIZERS_PARALLELISM", None), ("PWD", None), ("AUTHOR", None), ("KEY_ID", None)],
)
def test_key_names_are_read_by_word_parts(key: str, kind: str | None) -> None:
    assert key_kind(key) == kind


def test_plain_argv_flags_stay() -> None:
    for line in ("next start -p 3001", "docker run -p 8080:80 nginx",
                 "node --max-old-space-size=4096 --inspect=127.0.0.1:9229 app.js",
                 "app --max-tokens 4096 --auth-retries 3"):
        assert redact_document(line).text == line


def test_pm2_warning_after_the_json_keeps_the_json_path() -> None:
    text = (json.dumps([{"pm2_env": {"DB_PASSWORD": "after-json-9"}}])
            + "\n>>>> In-memory PM2 is out-of-date, do:\n>>>> $ pm2 update\n")
    result = redact_document(text)
    assert result.kind is DocumentKind.JSON
    head, _, tail = result.text.partition("\n")
    assert json.loads(head) == [{"pm2_env": {"DB_PASSWORD": "«redacted:password»"}}]
    assert tail == ">>>> In-memory PM2 is out-of-date, do:\n>>>> $ pm2 update\n"

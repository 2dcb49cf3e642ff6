"""Properties of the redactor on random documents: any secret planted anywhere in a random
dump, env file or log is gone; redacting twice changes nothing; JSON stays JSON."""

from __future__ import annotations

import base64
import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmkeeper.redact import DocumentKind, plain_value, redact_document

ALNUM = string.ascii_letters + string.digits
# Characters a password may hold wherever it is written unquoted (no separators or quotes).
PASSWORD_CHARS = ALNUM + "!#%*+-./:=?@^_~"

words = st.text(string.ascii_lowercase, min_size=1, max_size=10)
PLAIN_KEYS = ["NODE_ENV", "PORT", "HOME", "PATH", "name", "pm_id", "status", "cwd", "LANG",
              "exec_mode", "region", "build", "version"]
plain_keys = st.sampled_from(PLAIN_KEYS)
plain_values = st.one_of(words, st.integers(0, 99999).map(str),
                         st.builds(lambda a, b: f"/{a}/{b}", words, words))
secret_keys = st.sampled_from(["DB_PASSWORD", "SMTP_PASS", "JWT_SECRET", "API_KEY", "authToken",
                               "clientSecret", "ADMIN_PASSKEY", "DB_PASSWORDS", "x-api-key",
                               "STRIPE_SECRET_KEY", "sessionSecret", "MYSQL_PWD"])


@st.composite
def passwords(draw: st.DrawFn) -> str:
    head = draw(st.text(string.ascii_letters, min_size=3, max_size=6))
    digit = draw(st.sampled_from(string.digits))
    tail = draw(st.text(PASSWORD_CHARS, min_size=4, max_size=16))
    value = head + digit + tail
    return value if not plain_value(value) else value + "Zq9"


def token(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size).map(lambda body: prefix + body)


shaped = st.one_of(
    token("ghp_", ALNUM, 36), token("github_pat_", ALNUM + "_", 82), token("glpat-", ALNUM, 20),
    token("sk_live_", ALNUM, 24), token("xoxb-1234567890-", ALNUM, 24), token("AKIA", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    token("npm_", ALNUM, 36), token("SG.", ALNUM, 22).map(lambda t: t + "." + "x9" * 20),
    token("AIza", ALNUM, 35), token("hf_", string.ascii_letters, 34),
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str, str]:
    """(how the secret is written, the secret, the key it is written under).

    A secret under a plain key is one whose shape (a provider's format, a URL, a flag, a PEM
    block, base64 of `KEY=secret`) gives it away; a `named` secret is a password under a
    secret key name, which gives it away."""
    form = draw(st.sampled_from(["named", "shape", "url", "argv", "pem", "base64"]))
    if form == "shape":
        secret = draw(shaped)
        return secret, secret, draw(plain_keys)
    secret = draw(passwords())
    if form == "named":
        return secret, secret, draw(secret_keys)
    if form == "url":
        user = draw(st.sampled_from(["app", "", "svc"]))
        host = draw(st.sampled_from(["db:5432/app", "cache:6379", "rabbit/vh"]))
        scheme = draw(st.sampled_from(["postgres", "redis", "amqp", "mongodb+srv"]))
        return f"{scheme}://{user}:{secret}@{host}", secret, draw(plain_keys)
    if form == "argv":
        flag = draw(st.sampled_from(["--password", "--token", "--secret", "--api-key"]))
        return f"run {flag} {secret} --verbose", secret, draw(plain_keys)
    if form == "pem":
        body = draw(st.text(ALNUM + "+/", min_size=40, max_size=64))
        return (f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----", body,
                draw(plain_keys))
    encoded = base64.b64encode(f"DB_PASSWORD={secret}".encode()).decode()
    return encoded, encoded, draw(plain_keys)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), plain_values)
json_trees = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(plain_keys, children, max_size=4)),
    max_leaves=12,
)


def _plant(tree: Any, key: str, value: str, path: list[int]) -> Any:
    """``tree`` with ``{key: value}`` put into the first object the path leads to."""
    if isinstance(tree, dict):
        if not path or not tree:
            return {**tree, key: value}
        inner = list(tree)[path[0] % len(tree)]
        return {**tree, inner: _plant(tree[inner], key, value, path[1:])}
    if isinstance(tree, list) and tree and path:
        index = path[0] % len(tree)
        return [*tree[:index], _plant(tree[index], key, value, path[1:]), *tree[index + 1:]]
    return [tree, {key: value}]


def _check(document: str, secret: str) -> str:
    first = redact_document(document)
    assert secret not in first.text
    again = redact_document(first.text)
    assert again.text == first.text, "redacting twice changed the text"
    return first.text


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(planted(), json_trees, st.lists(st.integers(0, 8), max_size=4), st.booleans())
def test_a_secret_planted_anywhere_in_a_dump_is_gone(
    plant: tuple[str, str, str], tree: Any, path: list[int], banner: bool
) -> None:
    written, secret, key = plant
    document = [{"name": "app", "pm2_env": {"env": _plant(tree, key, written, path)}}]
    text = json.dumps(document, indent=2 if banner else None)
    if banner:
        text = "[PM2] Spawning PM2 daemon with pm2_home=/root/.pm2\n" + text
    out = _check(text, secret)
    result = redact_document(text)
    assert result.kind is DocumentKind.JSON
    parsed = json.loads(out.split("\n", 1)[1] if banner else out)
    assert isinstance(parsed, list) and len(parsed) == 1


@FAST
@given(planted(), st.lists(st.tuples(plain_keys, plain_values), max_size=6), st.integers(0, 6))
def test_a_secret_planted_in_an_env_file_is_gone(
    plant: tuple[str, str, str], lines: list[tuple[str, str]], where: int
) -> None:
    written, secret, key = plant
    if "\n" in written:
        written = '"' + written + '"'
    entries = [f"{k}={v}" for k, v in lines]
    entries.insert(where % (len(entries) + 1), f"{key}={written}")
    text = "\n".join(entries) + "\n"
    out = _check(text, secret)
    assert out.count("\n") == text.count("\n")


@FAST
@given(planted(), st.lists(st.lists(words, min_size=1, max_size=6), max_size=5),
       st.integers(0, 5), st.sampled_from(["{k}={v}", '"{k}": "{v}"', "{k}: {v}", "{v}"]))
def test_a_secret_planted_in_a_log_is_gone(
    plant: tuple[str, str, str], lines: list[list[str]], where: int, layout: str
) -> None:
    written, secret, key = plant
    if layout == "{v}" and key not in PLAIN_KEYS:
        layout = "{k}={v}"  # a bare password, with no name beside it, is no one's to find
    text_lines = [" ".join(line) for line in lines]
    planted_line = "2026-06-12T03:14:15Z info " + layout.format(k=key, v=written)
    text_lines.insert(where % (len(text_lines) + 1), planted_line)
    text = "\n".join(text_lines) + "\n"
    out = _check(text, secret)
    assert out.count("\n") == text.count("\n")


@FAST
@given(json_trees)
def test_json_without_secrets_comes_back_unchanged(tree: Any) -> None:
    text = json.dumps([{"pm2_env": {"env": tree}}])
    assert redact_document(text).text == text

"""Replace every secret in a PM2 dump, a `pm2 jlist`, an env file or log text with a marker.

The runbook: `~/.pm2/dump.pm2` "contains environment variables and may contain secrets. Do not
paste it into public tools or tickets without redacting tokens, DB passwords, SMTP credentials,
API keys, and tunnel credentials." PM2 copies the whole environment of the shell that started
it into every app, twice (under `pm2_env.env` and flat on `pm2_env`), so a secret is found by
its key name wherever it sits, and by its shape (URL password, JWT, private key, cloud key,
bearer token, high-entropy string beside a secret-ish word) wherever the key says nothing.

The document keeps its form: JSON stays JSON with the same structure, an env file keeps its keys
and a text keeps its lines. Public entry points for `vmkeeper bundle` and the CLI:
`redact_text`, `redact_json`, `redact_file`, `redact_document` (which also lists findings).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vmkeeper.errors import VmkeeperError


def marker(kind: str) -> str:
    return f"«redacted:{kind}»"


class DocumentKind(str, Enum):
    JSON = "json"
    ENV = "env"
    TEXT = "text"


@dataclass(frozen=True)
class Finding:
    kind: str
    location: str  # `$[0].pm2_env.env.DB_PASSWORD`, `line 3 (SMTP_PASS)`, `line 12`


@dataclass(frozen=True)
class Redaction:
    kind: DocumentKind
    text: str
    findings: tuple[Finding, ...]


class RedactInputError(VmkeeperError):
    """The input cannot be read (missing, a directory, not text)."""

    exit_code = 2


# ------------------------------------------------------------------------------ by key name

# Order matters: the first word found names the kind.
_KEY_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private-key", re.compile(r"private[_.-]?key|\bssh[_.-]?key|_pem$|^pem$", re.IGNORECASE)),
    ("password", re.compile(r"pass(word|wd|phrase)?(?![a-z])|pwd|^pw$|_pw$", re.IGNORECASE)),
    ("tunnel-credentials", re.compile(r"tunnel|cloudflared|ngrok", re.IGNORECASE)),
    ("token", re.compile(r"token", re.IGNORECASE)),
    ("api-key", re.compile(r"api[_.-]?key|apikey|access[_.-]?key|(?:^|[_.-])key$|license[_.-]?key",
                           re.IGNORECASE)),
    ("secret", re.compile(r"secret", re.IGNORECASE)),
    ("credentials", re.compile(r"credential|(?:smtp|mail|db|database|postgres|pg|mysql|mongo|redis)"
                               r"[_.-]?user(name)?$", re.IGNORECASE)),
    ("session-secret", re.compile(r"session", re.IGNORECASE)),
    ("cookie-secret", re.compile(r"cookie", re.IGNORECASE)),
    ("salt", re.compile(r"salt", re.IGNORECASE)),
    ("auth", re.compile(r"auth|signature|dsn$|connection[_.-]?string", re.IGNORECASE)),
)
# Names that carry a secret-ish word but describe one: where, how long, whether.
_KEY_HARMLESS = re.compile(
    r"(?:[_.-](?:url|uri|host|hostname|port|path|file|dir|expires(?:[_.-]?in)?|ttl|timeout|enabled|"
    r"header|name|domain|algorithm|length|type|method|mode|provider|strategy|issuer|audience|"
    r"max[_.-]?age|secure|same[_.-]?site|http[_.-]?only)$)|^(?:auth|session|cookie|pwd|oldpwd)$",
    re.IGNORECASE,
)
_HARMLESS_VALUES = {"", "true", "false", "null", "none", "undefined", "0", "1", "bearer", "basic",
                    "token"}


def key_kind(key: str) -> str | None:
    """The kind of secret a key name announces, or None (`NODE_ENV`, `PORT`, `JWT_EXPIRES_IN`)."""
    if _KEY_HARMLESS.search(key):
        return None
    for kind, pattern in _KEY_KINDS:
        if pattern.search(key):
            return kind
    return None


# ------------------------------------------------------------------------------ by value shape

_PRIVATE_BLOCK = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?-----END \1-----", re.DOTALL
)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@\"'«]+:)([^\s@/\"'«]+)(@)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
_BEARER = re.compile(r"\b(Bearer|Basic|Token)(\s+)([A-Za-z0-9._~+/=-]{12,})")
# `name=value` or `name: value` inside free text and command lines (`--db-password=…`).
_ASSIGNMENT = re.compile(
    r"(?P<key>[A-Za-z_][\w.-]*)(?P<sep>[\"']?\s*[:=]\s*)(?P<quote>[\"']?)"
    r"(?P<value>[^\s\"',;&«]+)"
)
_HIGH_ENTROPY = re.compile(r"(?<![\w/.-])[A-Za-z0-9+/_=-]{24,}(?![\w/.-])")
_SECRET_WORD = re.compile(r"pass|secret|token|key|auth|cred|cookie|salt|session|bearer", re.IGNORECASE)


def _detect_secrets_patterns() -> list[tuple[str, re.Pattern[str], int]]:
    """Value patterns of detect-secrets' cloud and SaaS plugins (kind, pattern, group)."""
    from detect_secrets.plugins import (
        aws,
        azure_storage_key,
        discord,
        github_token,
        gitlab_token,
        jwt,
        mailchimp,
        openai,
        pypi_token,
        sendgrid,
        slack,
        square_oauth,
        stripe,
        telegram_token,
        twilio,
    )

    chosen = [
        ("aws-key", aws.AWSKeyDetector()), ("azure-storage-key", azure_storage_key.AzureStorageKeyDetector()),
        ("discord-token", discord.DiscordBotTokenDetector()), ("github-token", github_token.GitHubTokenDetector()),
        ("gitlab-token", gitlab_token.GitLabTokenDetector()), ("jwt", jwt.JwtTokenDetector()),
        ("mailchimp-key", mailchimp.MailchimpDetector()), ("openai-key", openai.OpenAIDetector()),
        ("pypi-token", pypi_token.PypiTokenDetector()), ("sendgrid-key", sendgrid.SendGridDetector()),
        ("slack-token", slack.SlackDetector()), ("square-secret", square_oauth.SquareOAuthDetector()),
        ("stripe-key", stripe.StripeDetector()), ("telegram-token", telegram_token.TelegramBotTokenDetector()),
        ("twilio-key", twilio.TwilioKeyDetector()),
    ]
    patterns: list[tuple[str, re.Pattern[str], int]] = []
    for kind, plugin in chosen:
        for pattern in plugin.denylist:
            # AWS's keyword pattern captures the key after `aws…secret…=`; the rest match whole.
            group = 1 if kind == "aws-key" and pattern.groups else 0
            patterns.append((kind, pattern, group))
    return patterns


_PLUGIN_PATTERNS: list[tuple[str, re.Pattern[str], int]] | None = None


def _plugins() -> list[tuple[str, re.Pattern[str], int]]:
    global _PLUGIN_PATTERNS
    if _PLUGIN_PATTERNS is None:
        _PLUGIN_PATTERNS = _detect_secrets_patterns()
    return _PLUGIN_PATTERNS


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(text: str) -> bool:
    if text.isdigit() or (text.isalpha() and text.islower()):
        return False
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    return has_digit and has_alpha and _entropy(text) >= 3.5


Report = Callable[[str], None]


def redact_value(text: str, report: Report | None = None) -> str:
    """Redact secrets found by their shape anywhere in ``text`` (one line or a JSON string)."""
    found = report or (lambda _kind: None)

    def sub(pattern: re.Pattern[str], kind: str, group: int, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            found(kind)
            start, end = match.span(group)
            whole_start = match.start()
            return match.group(0)[: start - whole_start] + marker(kind) + \
                match.group(0)[end - whole_start:]
        return pattern.sub(replace, value)

    def block(match: re.Match[str]) -> str:
        found("private-key")
        # Keep the line count: text keeps its lines.
        return marker("private-key") + "\n" * match.group(0).count("\n")

    text = _PRIVATE_BLOCK.sub(block, text)
    if "-----BEGIN" in text and "PRIVATE KEY" in text:
        found("private-key")
        text = re.sub(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*", marker("private-key"), text)
    text = sub(_URL_PASSWORD, "password", 2, text)
    text = sub(_JWT, "jwt", 0, text)
    text = sub(_BEARER, "bearer-token", 3, text)
    for kind, pattern, group in _plugins():
        text = sub(pattern, kind, group, text)

    def assignment(match: re.Match[str]) -> str:
        kind = key_kind(match.group("key"))
        value = match.group("value")
        if kind is None or value.lower() in _HARMLESS_VALUES or value.startswith("«"):
            return match.group(0)
        found(kind)
        return match.group(0)[: match.start("value") - match.start()] + marker(kind)

    text = _ASSIGNMENT.sub(assignment, text)
    if _SECRET_WORD.search(text):
        def entropy(match: re.Match[str]) -> str:
            if not _looks_random(match.group(0)):
                return match.group(0)
            found("high-entropy")
            return marker("high-entropy")
        text = _HIGH_ENTROPY.sub(entropy, text)
    return text


# ------------------------------------------------------------------------------ documents

def _redact_json_value(value: Any, path: str, under_secret: str | None,
                       findings: list[Finding]) -> Any:
    if isinstance(value, dict):
        return {
            key: _redact_json_value(item, f"{path}.{key}", key_kind(str(key)) or under_secret,
                                    findings)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json_value(item, f"{path}[{index}]", under_secret, findings)
                for index, item in enumerate(value)]
    if under_secret is not None and isinstance(value, (str, int, float)) \
            and not isinstance(value, bool) and str(value).lower() not in _HARMLESS_VALUES:
        findings.append(Finding(under_secret, path))
        return marker(under_secret)
    if isinstance(value, str):
        return redact_value(value, _collector(findings, path))
    return value


def redact_json(document: Any) -> Any:
    """A copy of a parsed JSON document with every secret replaced; same structure."""
    return _redact_json_value(document, "$", None, [])


_ENV_LINE = re.compile(
    r"^(?P<lead>\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P<eq>\s*=\s*)(?P<value>.*)$"
)


def _redact_lines(text: str, env: bool, findings: list[Finding]) -> str:
    # Private key blocks span lines: take them out first, keeping the line count.
    def block(match: re.Match[str]) -> str:
        line = text.count("\n", 0, match.start()) + 1
        findings.append(Finding("private-key", f"line {line}"))
        return marker("private-key") + "\n" * match.group(0).count("\n")

    text = _PRIVATE_BLOCK.sub(block, text)
    out: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = _ENV_LINE.match(line) if env else None
        if match is not None:
            kind = key_kind(match.group("key"))
            raw = match.group("value").strip()
            unquoted = raw.strip("\"'")
            if kind is not None and unquoted.lower() not in _HARMLESS_VALUES \
                    and not unquoted.startswith("«"):
                findings.append(Finding(kind, f"line {number} ({match.group('key')})"))
                quote = raw[0] if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] else ""
                out.append(f"{match.group('lead')}{match.group('key')}{match.group('eq')}"
                           f"{quote}{marker(kind)}{quote}")
                continue
            location = f"line {number} ({match.group('key')})"
        else:
            location = f"line {number}"
        out.append(redact_value(line, _collector(findings, location)))
    return "\n".join(out)


def _collector(findings: list[Finding], location: str) -> Report:
    return lambda kind: findings.append(Finding(kind, location))


def redact_text(text: str) -> str:
    """Log or plain text with every secret replaced; the same lines, in the same order."""
    return _redact_lines(text, env=False, findings=[])


def detect_kind(text: str) -> DocumentKind:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
            return DocumentKind.JSON
        except ValueError:
            pass
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and sum(1 for ln in lines if _ENV_LINE.match(ln)) >= max(1, int(len(lines) * 0.8)):
        return DocumentKind.ENV
    return DocumentKind.TEXT


def redact_document(text: str, kind: DocumentKind | None = None) -> Redaction:
    """Redact ``text`` as the kind of document it is (detected unless given), with findings."""
    kind = kind or detect_kind(text)
    findings: list[Finding] = []
    if kind is DocumentKind.JSON:
        document = json.loads(text)
        redacted = _redact_json_value(document, "$", None, findings)
        # PM2 writes compact JSON; keep the reader's layout choice coarse: indented if it was.
        indent = 2 if "\n" in text.strip() else None
        result = json.dumps(redacted, indent=indent, ensure_ascii=False)
        if text.endswith("\n"):
            result += "\n"
    else:
        result = _redact_lines(text, env=kind is DocumentKind.ENV, findings=findings)
    return Redaction(kind=kind, text=result, findings=tuple(findings))


def read_text(path: Path) -> str:
    """The text of ``path``; raises RedactInputError naming the problem."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RedactInputError(f"{path} does not exist: give a dump, env file or log.") from None
    except IsADirectoryError:
        raise RedactInputError(f"{path} is a directory: give a file.") from None
    except PermissionError:
        raise RedactInputError(f"{path} is not readable by this user.") from None
    if b"\0" in data[:8192]:
        raise RedactInputError(f"{path} is a binary file: redact only text, JSON or env files.")
    return data.decode("utf-8", errors="replace")


def redact_file(path: Path | str) -> str:
    """The redacted text of a file, its kind detected (`dump.pm2`, jlist, `.env`, a log)."""
    return redact_document(read_text(Path(path))).text

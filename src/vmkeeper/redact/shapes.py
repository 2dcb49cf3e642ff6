"""Secrets found by their shape in free text: providers' token formats, PEM keys, URLs.

Every pattern here runs on input from outside (logs, dumps, env files), so each one runs on
RE2 (`google-re2`), whose matching time is linear in the input by construction: a 1 MB line of
`a=a=a=…` or of hex costs what a 1 MB log costs. RE2 has no look-around and no backreference;
the patterns are written without them. RE2's Python binding re-encodes its whole input on every
call, so each pattern is run once per line (`finditer`), never once per match.

The provider formats follow the facts secret scanners publish (gitleaks' rule list, GitHub's
and the providers' own documentation of token prefixes); each is a prefix and a minimum length
of token characters, matched greedily, so a longer token is hidden whole.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from vmkeeper import linear_regex

# kind, pattern: a fixed prefix or structure, then token characters.
PROVIDERS: tuple[tuple[str, str], ...] = (
    ("github-token", r"gh[pousr]_[A-Za-z0-9]{30,}"),
    ("github-token", r"github_pat_[A-Za-z0-9_]{30,}"),
    ("gitlab-token", r"gl(?:pat|dt|ft|imt|ptt|rt|soat|cbt|agent|oas|ffct)-[A-Za-z0-9_.-]{20,}"),
    ("gitlab-token", r"GR1348941[A-Za-z0-9_-]{20,}"),
    ("slack-token", r"xox[abposre](?:\.xox[bp])?-[A-Za-z0-9-]{10,}"),
    ("slack-token", r"xapp-\d-[A-Za-z0-9-]{10,}"),
    ("slack-webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}"),
    ("discord-webhook",
     r"(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{20,}"),
    ("discord-token", r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
    ("teams-webhook", r"[a-z0-9-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_-]{40,}"),
    ("stripe-key", r"(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,}"),
    ("stripe-key", r"whsec_[A-Za-z0-9]{20,}"),
    ("aws-key", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    ("google-key", r"AIza[0-9A-Za-z_-]{35}"),
    ("google-token", r"ya29\.[0-9A-Za-z_-]{20,}"),
    ("google-secret", r"GOCSPX-[A-Za-z0-9_-]{20,}"),
    ("openai-key", r"sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_-]{20,}"),
    ("huggingface-token", r"(?:hf_|api_org_)[A-Za-z]{30,}"),
    ("twilio-key", r"(?:SK|AC)[0-9a-f]{32}"),
    ("sendgrid-key", r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"),
    ("sendinblue-key", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    ("mailgun-key", r"key-[a-f0-9]{32}"),
    ("mailchimp-key", r"[a-f0-9]{32}-us\d{1,2}"),
    ("npm-token", r"npm_[A-Za-z0-9]{36,}"),
    ("pypi-token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    ("rubygems-token", r"rubygems_[a-f0-9]{48}"),
    ("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}"),
    ("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("square-token", r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,}"),
    ("telegram-token", r"(?:bot)?\d{8,10}:AA[A-Za-z0-9_-]{32,}"),
    ("sentry-token", r"sntry[su]_[A-Za-z0-9+/=_]{30,}"),
    ("databricks-token", r"dapi[a-f0-9]{32}(?:-\d)?"),
    ("doppler-token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}"),
    ("linear-key", r"lin_(?:api|oauth)_[A-Za-z0-9]{40,}"),
    ("postman-key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    ("pulumi-token", r"pul-[a-f0-9]{40}"),
    ("vault-token", r"hv[sbr]\.[A-Za-z0-9_-]{24,}"),
    ("age-key", r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    ("heroku-key", r"HRKU-AA[0-9a-zA-Z_-]{58}"),
    ("planetscale-token", r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,}"),
    ("grafana-token", r"(?:glc|glsa)_[A-Za-z0-9+/_]{32,}={0,3}"),
    ("dynatrace-token", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    ("atlassian-token", r"ATATT3[A-Za-z0-9_=-]{100,}"),
    ("azure-secret", r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    ("facebook-token", r"EAA[MC][A-Za-z0-9]{100,}"),
    ("newrelic-key", r"NR(?:AK|II|JS)-[A-Za-z0-9-]{19,}"),
    ("cloudflare-key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    ("onepassword-token", r"ops_eyJ[A-Za-z0-9+/]{100,}={0,3}"),
    ("onepassword-key",
     r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"),
    ("flyio-token", r"(?:fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})"),
    ("notion-token", r"(?:ntn_[0-9]{11}[A-Za-z0-9]{32,}|secret_[A-Za-z0-9]{43})"),
    ("supabase-token", r"sb[ps]_[a-f0-9]{40,}"),
    ("mapbox-token", r"sk\.eyJ[A-Za-z0-9_-]{50,}\.[A-Za-z0-9_-]{20,}"),
    ("adobe-secret", r"p8e-[A-Za-z0-9]{32}"),
    ("alibaba-key", r"LTAI[A-Za-z0-9]{20}"),
    ("artifactory-key", r"AKCp[A-Za-z0-9]{69}"),
    ("easypost-key", r"EZ[AT]K[A-Za-z0-9]{54}"),
    ("duffel-token", r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}"),
    ("frameio-token", r"fio-u-[A-Za-z0-9_=-]{64}"),
    ("prefect-token", r"pnu_[A-Za-z0-9]{36}"),
    ("readme-token", r"rdme_[a-z0-9]{70}"),
    ("scalingo-token", r"tk-us-[A-Za-z0-9_-]{48}"),
    ("perplexity-key", r"pplx-[A-Za-z0-9]{48}"),
    ("infracost-token", r"ico-[A-Za-z0-9]{32}"),
    ("clojars-token", r"CLOJARS_[a-z0-9]{60}"),
    ("flutterwave-key", r"FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{12,32}(?:-X)?"),
    ("octopus-key", r"API-[A-Z0-9]{26}"),
    ("harness-token", r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    ("terraform-token", r"[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}"),
    ("openshift-token", r"sha256~[A-Za-z0-9_-]{43}"),
    ("settlemint-token", r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}"),
    ("shippo-token", r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Base64 of a JSON object (Cloudflare tunnel tokens, Grafana keys, service tokens).
    ("token", r"eyJ[A-Za-z0-9+/_-]{30,}={0,2}"),
    # DER private keys pasted without their PEM lines (PKCS#8, PKCS#1, EC).
    ("private-key", r"MII[A-Za-z0-9+/]{2}(?:IBADAN|IBAAKC|gIBADAN)[A-Za-z0-9+/=]{40,}"),
    ("private-key", r"MHcCAQEE[A-Za-z0-9+/=]{40,}"),
)

_PEM = (r"-----BEGIN[ A-Z0-9_-]{0,60}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?:\r?\n|\\r|\\n|[ \t])*(?:[A-Za-z0-9+/=]+|(?:Proc-Type|DEK-Info|Comment|Version"
        r"|Hash):[^\n\\]*))*"
        r"(?:(?:\r?\n|\\r|\\n|[ \t])*-----END[ A-Z0-9_-]{0,60}-----)?")
_URL = r"(?i)\b[a-z][a-z0-9+.-]{1,24}://([^\s\"'<>«»`\\]+)"
_SCHEME = r"(?i)\b(bearer|basic|digest|token|apikey|api-key|sso-key)[ \t]+([A-Za-z0-9._~+/=:-]{8,})"
_LONG = r"[A-Za-z0-9+/_-]{20,}={0,2}"
# A line about secrets: random strings on it are hidden.
_SECRET_LINE = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "cookie", "salt",
                "session", "bearer", "signature", "private", "dsn", "jwt")


def secret_line(lowered: str) -> bool:
    return any(word in lowered for word in _SECRET_LINE)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    name: str | None = None  # the key or flag that named it, when one did


@cache
def _compiled() -> dict[str, Any]:
    # Compiled on first use: the CLI starts without RE2.
    budget = 64 << 20
    # Group N + 1 is provider N (the providers' own groups are all non-capturing).
    providers = "|".join(f"({pattern})" for _kind, pattern in PROVIDERS)
    return {
        "providers": linear_regex.compile(rf"(?:^|[^A-Za-z0-9_])(?:{providers})", max_mem=budget),
        "pem": linear_regex.compile(_PEM, max_mem=budget),
        "url": linear_regex.compile(_URL, max_mem=budget),
        "scheme": linear_regex.compile(_SCHEME, max_mem=budget),
        "long": linear_regex.compile(_LONG, max_mem=budget),
    }


def pattern(name: str) -> Any:
    return _compiled()[name]


def provider_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for match in pattern("providers").finditer(text):
        group = match.lastindex
        if group is None:
            continue
        start, end = match.span(group)
        spans.append(Span(start, end, PROVIDERS[group - 1][0]))
    return spans


def pem_spans(text: str) -> list[Span]:
    """Private keys, whole, truncated or with END lines that do not match their BEGIN."""
    if "PRIVATE KEY" not in text:
        return []
    return [Span(m.start(), m.end(), "private-key") for m in pattern("pem").finditer(text)]


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def tokenish(text: str, strict: bool = False) -> bool:
    """Looks generated: mixed classes and enough entropy (`abcdefghijklmnop` is not)."""
    if len(text) < (16 if strict else 8):
        return False
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    has_upper = any(c.isupper() for c in text)
    if strict:
        return has_digit and has_alpha and entropy(text) >= 3.3
    return has_alpha and (has_digit or has_upper or not text.isalpha()) and entropy(text) >= 2.5


def url_spans(text: str) -> list[Span]:
    """The password (or token user) of every URL, parsed as URL parsers split userinfo."""
    if "://" not in text:
        return []
    spans: list[Span] = []
    for match in pattern("url").finditer(text):
        found = _userinfo(match.group(1))
        if found is not None:
            start, end, kind = found
            spans.append(Span(match.start(1) + start, match.start(1) + end, kind))
    return spans


def _userinfo(rest: str) -> tuple[int, int, str] | None:
    # The userinfo ends at the last `@` that is followed by a host, so a password may hold raw
    # `@` and `/` (`amqp://u:p@ss/w0rd@host`), as URL parsers read `user:pass@host`.
    at = rest.rfind("@")
    while at > 0:
        if at + 1 < len(rest) and (rest[at + 1].isalnum() or rest[at + 1] == "["):
            userinfo = rest[:at]
            colon = userinfo.find(":")
            user = userinfo if colon < 0 else userinfo[:colon]
            if any(c in user for c in "/?#"):
                return None
            if colon < 0:
                return (0, at, "token") if tokenish(user, strict=True) else None
            password = userinfo[colon + 1:]
            digits = len(password) - len(password.lstrip("0123456789"))
            if digits and (digits == len(password) or password[digits] in "/?#"):
                return None  # `host:8080/path@x`: a port, not a password
            if not password:
                return None
            return colon + 1, at, "password"
        at = rest.rfind("@", 0, at)
    return None


def scheme_spans(text: str) -> list[Span]:
    """`Authorization: Bearer …`, `basic …`, `token …` in any case."""
    spans: list[Span] = []
    for match in pattern("scheme").finditer(text):
        scheme = match.group(1).lower()
        value = match.group(2)
        if value.startswith("«"):
            continue
        strict = scheme == "token"
        if tokenish(value, strict=strict):
            spans.append(Span(match.start(2), match.end(2), "bearer-token"))
    return spans


def long_token_spans(text: str, about_secrets: Callable[[int], bool],
                     hidden: Callable[[int], bool], depth: int) -> list[Span]:
    """Base64 that decodes to `KEY=secret` text, and random strings on a line about secrets."""
    from vmkeeper.redact.scan import find_spans  # the decoded text is scanned like any text

    spans: list[Span] = []
    for match in pattern("long").finditer(text):
        if hidden(match.start()):
            continue  # inside a private key already hidden whole
        if text[max(0, match.start() - 7):match.start()].lower().endswith(_DIGEST_LABELS):
            continue  # `SHA256:…` (a key's fingerprint), `sha512-…` (npm integrity): digests
        token = match.group(0)
        decoded = _decode_base64(token) if depth < 2 else None
        if decoded is not None and find_spans(decoded, depth + 1):
            spans.append(Span(match.start(), match.end(), "base64-secret"))
        elif _random(token) and about_secrets(match.start()):
            spans.append(Span(match.start(), match.end(), "high-entropy"))
    return spans


_DIGEST_LABELS = ("sha256:", "sha512:", "sha384:", "sha1:", "md5:", "sha256-", "sha512-",
                  "sha384-", "sha1-")


def _wordy(token: str) -> bool:
    """`/home/ubuntu/frontend-releases/20260612T031415Z-ab12cd3`: words, not randomness."""
    parts = token.replace("-", "/").replace("_", "/").split("/")
    return sum(1 for part in parts if len(part) >= 3 and part.isalpha() and part.islower()) >= 2


def _random(token: str) -> bool:
    core = token.rstrip("=")
    if len(core) < 24 or all(c in "0123456789abcdefABCDEF-" for c in core) or _wordy(core):
        return False  # hex digests, UUIDs, commit ids and paths are not secrets by themselves
    return tokenish(core, strict=True) and any(c.isupper() for c in core) \
        and any(c.islower() for c in core)


def _decode_base64(token: str) -> str | None:
    core = token.rstrip("=")
    if len(core) < 16:
        return None
    padded = core + "=" * (-len(core) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(padded)
        except (binascii.Error, ValueError):
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
        if text and printable == len(text) and any(c in text for c in "=:"):
            return text
    return None

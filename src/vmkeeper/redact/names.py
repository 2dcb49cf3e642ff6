"""Which key names announce a secret, and which values under them cannot be one.

A name is read as words (snake, kebab, dot, camel and digits split; plurals folded), so
`DB_PASSWORDS`, `ADMIN_PASSKEY`, `passwordHash`, `x-api-key` and `npm_config__authToken` are
all found, while `PASSENGER_APP_ENV`, `TOKENIZERS_PARALLELISM` and `AUTHOR` are not. A name
whose secret word is followed by a word that describes it (`TOKEN_EXPIRY`, `AUTH_RETRIES`,
`SECRET_ROTATION_DAYS`, `DB_PASSWORD_FILE`) or preceded by a quantity (`MAX_TOKENS`) names an
attribute of a secret, not the secret. The value decides the rest: `true`, `6h`, `${VAR}`,
`/run/secrets/db` or a count under a plural name hold no secret.

Everything here is a linear scan of a bounded part of the name (no regular expression), and
a name's reading is cached: a dump repeats the same few hundred names in every app.
"""

from __future__ import annotations

from functools import lru_cache

# A key longer than this is read by its last characters: real names are short, and the tail
# carries the head word.
_MAX_KEY = 200

_PASSWORD_WORDS = {"password", "passwd", "passwort", "pass", "pwd", "pw", "passphrase",
                   "passcode", "passkey", "psw", "pword"}
_PASSWORD_STEMS = ("password", "passwd", "passphrase", "passkey", "passcode", "passwort")
_NOT_PASS = {"bypass", "askpass", "compass", "overpass", "underpass", "trespass", "surpass",
             "encompass", "impass", "bypasses"}
_SECRET_STEMS = ("secret",)
_TOKEN_EXCEPT = ("tokeniz", "tokenis")
_KEY_PRECEDERS_PLAIN = {"public", "pub", "publishable", "primary", "foreign", "sort", "partition",
                        "cache", "idempotency", "object", "translation", "i18n", "hot", "unique",
                        "composite", "lookup", "index", "row", "column", "field", "name",
                        "hash", "map", "dict", "record", "storage", "s3", "bucket", "route",
                        "react", "vapid", "registry", "group", "shard", "routing", "order"}
_KEY_COMPOUNDS = ("apikey", "accesskey", "secretkey", "privatekey", "authkey", "signingkey",
                  "encryptionkey", "masterkey", "licensekey", "appkey", "sshkey", "deploykey",
                  "servicekey", "accountkey", "clientkey", "hmackey", "cryptkey", "jwtkey")
# Words that, after the secret word, make the name describe the secret rather than hold it.
DESCRIPTORS = {
    "url", "uri", "urls", "endpoint", "endpoints", "host", "hostname", "port", "path", "paths",
    "file", "files", "filename", "dir", "directory", "folder", "location", "socket", "sock",
    "name", "names", "id", "ids", "type", "types", "kind", "header", "headers", "field", "param",
    "prefix", "suffix", "length", "len", "size", "bytes", "bits", "count", "limit", "limits", "max",
    "min", "ttl", "timeout", "timeouts", "expiry", "expires", "expiration", "expire", "exp",
    "age", "lifetime", "duration", "interval", "period", "days", "day", "hours", "hour",
    "minutes", "minute", "mins", "seconds", "second", "sec", "secs", "ms", "millis",
    "retries", "retry", "attempts", "attempt", "rounds", "round", "cost", "iterations", "rotation",
    "enabled", "disabled", "enable", "disable", "required", "optional", "mode", "algorithm",
    "algorithms", "algo", "alg", "issuer", "audience", "scope", "scopes", "provider", "providers",
    "strategy", "version", "format", "encoding", "policy", "method", "methods", "schema",
    "regex", "pattern", "rule", "rules", "store", "backend", "driver", "engine", "class",
    "handler", "level", "source", "manager", "domain", "secure", "samesite", "httponly",
    "hint", "label", "description", "title", "tag", "strength", "complexity", "chars",
    "ref", "reference", "refs", "in", "at", "until", "when", "per", "window", "threshold",
    "quota", "budget", "usage", "used", "remaining", "left", "rate", "ratelimit", "grace",
    "refresh", "reset", "env", "region", "dialect", "cipher", "digest",
    "flag", "flags", "mask", "masking", "visible", "show", "display",
    "placeholder", "validation", "validator", "check", "checks", "status", "state", "stdin",
    "through", "thru",
}
_QUANTITIES = {"max", "min", "num", "number", "count", "total", "limit", "nb", "n"}
_USER_OWNERS = {"smtp", "mail", "email", "db", "database", "postgres", "postgresql", "pg",
                "mysql", "mariadb", "mongo", "mongodb", "redis", "amqp", "rabbitmq", "ftp", "sftp",
                "ldap", "proxy", "imap", "pop3", "mssql", "sql"}
_USER_WORDS = {"user", "username", "login", "usr"}
_TUNNEL_WORDS = {"tunnel", "cloudflared", "ngrok", "argo"}
# Every secret name holds one of these; most keys hold none and cost one scan.
_STRONG_STEMS = ("pass", "pw", "psw", "secret", "token", "key", "auth", "cred", "cookie", "salt",
                 "pepper", "dsn", "jwt", "bearer", "netrc", "pword", "sig")
_USER_STEMS = ("user", "login", "usr")
_NAME_STEMS = _STRONG_STEMS + _USER_STEMS
# Text worth reading for `key=value` pairs: a strong stem, or a user word with its owner.
_TEXT_OWNERS = ("smtp", "mail", "db", "database", "postgres", "pg", "mysql", "maria", "mongo",
                "redis", "amqp", "rabbit", "ftp", "ldap", "proxy", "imap", "pop3", "sql")
# Shell variables named like secrets.
_NOT_SECRET_NAMES = {"pwd", "oldpwd", "xauthority", "ssh_auth_sock", "gpg_tty", "keytimeout"}

_HARMLESS_VALUES = {"", "true", "false", "null", "none", "nil", "undefined", "yes", "no", "on",
                    "off", "0", "1", "-1", "bearer", "basic", "token", "digest", "[]", "{}",
                    "required", "optional", "enabled", "disabled", "n/a", "na", "-", "***",
                    "redacted", "[redacted]", "[filtered]", "<redacted>", "hidden", "masked"}
_DURATION_UNITS = ("ms", "s", "m", "h", "d", "w", "y", "sec", "secs", "second", "seconds", "min",
                   "mins", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks",
                   "month", "months", "year", "years")
_PATH_ROOTS = {"etc", "home", "var", "run", "usr", "opt", "tmp", "srv", "mnt", "root", "proc",
               "dev", "app", "data", "secrets", "certs", "ssl", "keys", "config", "workspace",
               "users", "private", "lib", "snap", "media", "volumes", "vault"}


@lru_cache(maxsize=8192)
def words(key: str) -> tuple[str, ...]:
    """The lowercase words of a key name: `passwordHash` → [password, hash]."""
    key = key[-_MAX_KEY:]
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            out.append("".join(current).lower())
            current.clear()

    previous = ""
    for index, char in enumerate(key):
        if not char.isalnum():
            flush()
        elif current and (
            (char.isupper() and previous.islower())
            or (char.isdigit() != previous.isdigit())
            or (char.isupper() and previous.isupper() and index + 1 < len(key)
                and key[index + 1].islower())
        ):
            flush()
            current.append(char)
        else:
            current.append(char)
        previous = char
    flush()
    return tuple(out)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def _word_kind(word: str, previous: str | None) -> str | None:
    """The kind of secret one word names, reading concatenations (`dbpassword`, `authtoken`)."""
    w = _singular(word)
    if w in _PASSWORD_WORDS:
        return "password"
    if any(stem in w for stem in _PASSWORD_STEMS):
        return "password"
    if len(w) > 4 and w.endswith(("pass", "pwd")) and w not in _NOT_PASS:
        return "password"
    if w.startswith("privatekey") or (w == "key" and previous == "private"):
        return "private-key"
    if any(stem in w for stem in _SECRET_STEMS):
        return "secret"
    if "token" in w and not any(stop in w for stop in _TOKEN_EXCEPT):
        return "token"
    if any(w.startswith(c) or w.endswith(c) for c in _KEY_COMPOUNDS):
        return "api-key"
    if w in ("key", "apikey"):
        return None if previous in _KEY_PRECEDERS_PLAIN else "api-key"
    if w in ("credential", "cred", "creds", "credentials"):
        return "credentials"
    if w in ("cookie",):
        return "cookie-secret"
    if w in ("salt", "pepper"):
        return "salt"
    if w in ("auth", "authorization", "bearer", "dsn", "jwt", "htpasswd", "netrc", "authinfo",
             "sig", "signature"):
        return "auth"
    return None


_PRIORITY = ("private-key", "password", "token", "api-key", "secret", "credentials",
             "cookie-secret", "salt", "auth")


def key_kind(key: str, value: str | None = None) -> str | None:
    """The kind of secret a key name announces (and, given, its value holds), or None.

    `NODE_ENV`, `PORT`, `JWT_EXPIRES_IN`, `MAX_TOKENS`, `AUTH_RETRIES` → None;
    `DB_PASSWORDS`, `passwordHash`, `x-api-key` → a kind.
    """
    chosen = _name_kind(key[-_MAX_KEY:])
    if chosen is None or value is None:
        return chosen
    if plain_value(value):
        return None
    if chosen in _GENERATED and _wordlike(value):
        return None  # `key=main`: keys and tokens are generated, never a lowercase word
    last = words(key)[-1]
    if last.endswith("s") and _singular(last) != last and _is_number(value):
        return None  # `OPENAI_TOKENS=4096`: a count under a plural name
    return chosen


@lru_cache(maxsize=8192)
def _name_kind(key: str) -> str | None:
    lowered = key.lower()
    if not any(stem in lowered for stem in _NAME_STEMS) or lowered.strip() in _NOT_SECRET_NAMES:
        return None
    if "«redacted:" in lowered:
        return None  # our own marker (`'«redacted:api-key»'=…`) names nothing
    parts = words(key)
    if not parts:
        return None
    found: list[tuple[int, str]] = []
    for index, word in enumerate(parts):
        kind = _word_kind(word, parts[index - 1] if index else None)
        if kind is not None:
            found.append((index, kind))
    if not found:
        return _user_kind(parts)
    last = found[-1][0]
    if any(word in DESCRIPTORS for word in parts[last + 1:]):
        return None
    first = found[0][0]
    if any(word in _QUANTITIES for word in parts[:first]):
        return None
    # `auth` (and `sig`, `dsn`…) names a secret only as the last word (`BASIC_AUTH`, `_auth`,
    # `X-Amz-Signature`), not `AUTH_CLIENT`.
    kinds = [k for index, k in found if k != "auth" or index == len(parts) - 1]
    if not kinds:
        return None
    chosen = min(kinds, key=_PRIORITY.index)
    if any(word in _TUNNEL_WORDS for word in parts):
        chosen = "tunnel-credentials"
    return chosen


def may_name_secrets(text: str) -> bool:
    """False when no key in ``text`` (lowercased) can name a secret: the line needs no reading."""
    if any(stem in text for stem in _STRONG_STEMS):
        return True
    return any(stem in text for stem in _USER_STEMS) and any(o in text for o in _TEXT_OWNERS)


def _user_kind(parts: tuple[str, ...]) -> str | None:
    if parts[-1] in _USER_WORDS and any(word in _USER_OWNERS for word in parts[:-1]):
        return "credentials"
    return None


_GENERATED = {"api-key", "token"}


def _wordlike(value: str) -> bool:
    text = value.strip().strip("\"'")
    return 0 < len(text) <= 24 and all(c.islower() or c in "-_.:" for c in text)


def _is_number(value: str) -> bool:
    text = value.strip()
    if text[:1] in "+-":
        text = text[1:]
    return bool(text) and text.replace(".", "", 1).replace("_", "").isdigit()


def _is_duration(text: str) -> bool:
    lowered = text.strip().lower()
    digits = 0
    while digits < len(lowered) and (lowered[digits].isdigit() or lowered[digits] == "."):
        digits += 1
    unit = lowered[digits:].strip()
    return 0 < digits <= 8 and unit in _DURATION_UNITS


def _is_reference(text: str) -> bool:
    """`${DB_PASSWORD}`, `$DB_PASSWORD`, `%APPDATA%`, `{{ secrets.X }}`, `<your-token>`."""
    if text.startswith("${") and text.endswith("}"):
        return True
    if text.startswith("{{") and text.endswith("}}"):
        return True
    if text.startswith("<") and text.endswith(">") and " " not in text[1:-1].strip():
        return True
    if text.startswith("%") and text.endswith("%") and len(text) > 2:
        return text[1:-1].replace("_", "").isalnum()
    body = text[1:]
    return text.startswith("$") and bool(body) and body.replace("_", "").isalnum() \
        and (body.isupper() or body.islower()) and not any(c.isdigit() for c in body[:1])


def _is_path(text: str) -> bool:
    """A file path (`/run/secrets/db`, `~/.ssh/id_rsa`, `./certs/key.pem`), not a base64 secret."""
    if any(c.isspace() for c in text) or ":" in text:
        return False
    if text.startswith(("./", "../", "~/")):
        rest = text.split("/", 1)[1]
    elif text.startswith("/"):
        rest = text[1:]
        root = rest.split("/", 1)[0].lower()
        if root not in _PATH_ROOTS:
            return False
    else:
        return False
    return all(part.replace(".", "").replace("_", "").replace("-", "").replace("@", "")
               .isalnum() or part == "" for part in rest.split("/"))


def plain_value(value: str) -> bool:
    """True when ``value`` cannot be a secret whatever its name says."""
    text = value.strip().strip("\"'").strip()
    lowered = text.lower()
    if lowered in _HARMLESS_VALUES or text.startswith("«") or not any(c.isalnum() for c in text):
        return True
    if len(text) >= 3 and len(set(text)) == 1 and text[0] in "*x•X#.-_":
        return True  # a mask: `********`, `xxxxx`
    return _is_duration(text) or _is_reference(text) or _is_path(text)

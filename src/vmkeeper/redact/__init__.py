"""Replace every secret in a PM2 dump, a `pm2 jlist`, an env file or log text with a marker.

The runbook: `~/.pm2/dump.pm2` "contains environment variables and may contain secrets. Do not
paste it into public tools or tickets without redacting tokens, DB passwords, SMTP credentials,
API keys, and tunnel credentials." PM2 copies the whole environment of the shell that started
it into every app, twice (under `pm2_env.env` and flat on `pm2_env`), so a secret is found by
its key name wherever it sits (`names`), by its shape wherever the key says nothing (`shapes`),
and by its place in a command line (`--token X`, `mysql -pX`; `scan`).

The document keeps its form: JSON stays JSON with the same structure (a banner PM2 printed
before it stays too), an env file keeps its keys and a text keeps its lines. Public entry
points for `vmkeeper bundle`, `vmkeeper logs` and the CLI: `redact_text`, `redact_json`,
`redact_file`, `redact_document` (which also lists findings), `key_kind`, `marker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from vmkeeper.errors import VmkeeperError
from vmkeeper.redact.names import key_kind, plain_value
from vmkeeper.redact.scan import marker

__all__ = ["DocumentKind", "Finding", "FindingGroup", "RedactInputError", "Redaction",
           "detect_kind", "group_findings", "key_kind", "marker", "plain_value", "read_text",
           "redact_document", "redact_file", "redact_json", "redact_text"]


class DocumentKind(str, Enum):
    JSON = "json"
    ENV = "env"
    TEXT = "text"


@dataclass(frozen=True)
class Finding:
    kind: str
    location: str  # `$[0].pm2_env.env.DB_PASSWORD`, `line 3`
    name: str | None = None  # the key or flag that named the secret, when one did


@dataclass(frozen=True)
class Redaction:
    kind: DocumentKind
    text: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class FindingGroup:
    """One secret found in several places: `DB_PASSWORD` in 4 apps × 2 places is one group."""

    kind: str
    name: str | None
    count: int
    apps: int  # distinct top-level entries of a JSON array (PM2's apps); 0 for text
    places: tuple[str, ...]  # where inside each app (`pm2_env`, `pm2_env.env`), or lines
    locations: tuple[str, ...]

    @property
    def summary(self) -> str:
        if self.apps and self.apps * len(self.places) == self.count and self.count > 1:
            return f"{self.count} places: {self.apps} apps × {len(self.places)} " \
                f"({', '.join(self.places)})"
        if self.count == 1:
            return self.locations[0]
        shown = ", ".join(self.places[:8]) + (", …" if len(self.places) > 8 else "")
        return f"{self.count} places: {shown}"


def _split_location(location: str, name: str | None) -> tuple[str | None, str]:
    """`$[2].pm2_env.env.DB_PASSWORD` → (`2`, `pm2_env.env`); `line 3 (X)` → (None, `line 3`)."""
    if not location.startswith("$"):
        return None, location.split(" (", 1)[0]
    app = None
    rest = location[1:]
    if rest.startswith("["):
        app, _, rest = rest[1:].partition("]")
    rest = rest.lstrip(".")
    if name and rest.endswith(name):
        rest = rest[: -len(name)].rstrip(".")
    return app, rest or "top level"


def group_findings(findings: tuple[Finding, ...] | list[Finding]) -> list[FindingGroup]:
    """Findings grouped by kind and name, in the order first found."""
    groups: dict[tuple[str, str | None], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.kind, finding.name), []).append(finding)
    out: list[FindingGroup] = []
    for (kind, name), members in groups.items():
        apps: dict[str, None] = {}
        places: dict[str, None] = {}
        for member in members:
            app, place = _split_location(member.location, name)
            if app is not None:
                apps[app] = None
            places[place] = None
        out.append(FindingGroup(kind, name, len(members), len(apps), tuple(places),
                                tuple(m.location for m in members)))
    return out


class RedactInputError(VmkeeperError):
    """The input cannot be read (missing, a directory, not text)."""

    exit_code = 2


def detect_kind(text: str) -> DocumentKind:
    from vmkeeper.redact import documents

    return documents.detect_kind(text)


def redact_document(text: str, kind: DocumentKind | None = None) -> Redaction:
    """Redact ``text`` as the kind of document it is (detected unless given), with findings.

    A document given as JSON that does not parse is redacted as text (a torn dump keeps lines).
    """
    from vmkeeper.redact import documents

    return documents.redact_document(text, kind)


def redact_text(text: str) -> str:
    """Log or plain text with every secret replaced; the same lines, in the same order."""
    return redact_document(text, DocumentKind.TEXT).text


def redact_json(document: object) -> object:
    """A copy of a parsed JSON document with every secret replaced; same structure."""
    from vmkeeper.redact import documents

    return documents.redact_tree(document, [])


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

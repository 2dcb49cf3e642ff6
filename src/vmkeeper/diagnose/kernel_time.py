"""Times in kernel logs: the prefixes journalctl, dmesg and syslog print, and --since/--until.

A kernel message reaches a log behind one of several prefixes: dmesg's uptime (`[ 1234.5]`) or
ctime (`[Fri Jun 12 03:14:15 2026]`), an ISO time (journalctl short-iso, RFC 5424, rsyslog), or
the yearless RFC 3164 time of kern.log and journalctl short, often followed by a syslog header
and printk's own uptime. `split_prefix` takes any of them off and says when the line was written,
as precisely as the prefix allows. Every pattern runs in linear time (RE2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vmkeeper import linear_regex
from vmkeeper.errors import UsageError

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Prefixes, tried in order on a candidate line. Each yields the time as printed and the rest.
# Digit runs are bounded: longer ones are not times, and converting them costs more than linear.
_PREFIXES = (
    # dmesg -T
    ("ctime", linear_regex.compile(
        r"^\[(?P<time>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} +\d{1,2} "
        r"\d\d:\d\d:\d\d \d{4})\]\s?(?P<rest>.*)$")),
    # dmesg raw, optionally with the level (`dmesg -r` or /dev/kmsg-style `<6>`)
    ("uptime", linear_regex.compile(
        r"^(?:<\d{1,3}>)?\[\s*(?P<time>\d{1,15}\.\d{1,12})\]\s?(?P<rest>.*)$")),
    # RFC 5424 (`<6>1 2026-06-12T03:14:15.1+02:00 host kernel - - - msg`), journalctl
    # short-iso / short-iso-precise, rsyslog's ISO template, dmesg --time-format iso
    ("iso", linear_regex.compile(
        r"^(?:<\d{1,3}>\d{0,2} )?(?P<time>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?"
        r"(?:Z|[+-]\d\d:?\d\d)?)\s(?P<rest>.*)$")),
    # journalctl short / short-precise, RFC 3164 syslog (kern.log, /var/log/messages)
    ("short", linear_regex.compile(
        r"^(?P<time>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d{1,9})?)\s(?P<rest>.*)$")),
)
# After a wall-clock time: `host ident[pid]: ` (3164, journal) or `host ident pid msgid sd ` (5424).
_SYSLOG_HEADER = linear_regex.compile(
    r"^(?P<host>\S+) (?P<ident>[^\s:\[]+)(?:\[\d+\])?(?::\s?| \S+ \S+ (?:-|\[.*?\])\s?)(?P<msg>.*)$"
)
# kern.log on Ubuntu keeps printk's own uptime stamp after `kernel: `.
_INNER_UPTIME = linear_regex.compile(
    r"^(?:<\d{1,3}>)?\[\s*(?P<time>\d{1,15}\.\d{1,12})\]\s?(?P<rest>.*)$")
_RELATIVE = linear_regex.compile(r"^-(?P<n>\d{1,9})\s*(?P<unit>s|sec|min|m|h|d)$")


@dataclass(frozen=True)
class Stamp:
    """When a line was written, as far as its prefix tells."""

    text: str | None  # as printed
    when: datetime | None = None  # aware, when the format gives a full date
    uptime: float | None = None  # seconds since boot (dmesg raw, or printk's inside kern.log)
    yearless: datetime | None = None  # short syslog time with the year guessed, for filtering

    @property
    def moment(self) -> datetime | None:
        """The wall-clock time to filter on: the full date, else the guessed year."""
        return self.when or self.yearless

    def within(self, other: Stamp, seconds: float) -> bool:
        """Whether the two lines were written at most ``seconds`` apart (unknown counts as yes)."""
        if self.text is None or other.text is None or self.text == other.text:
            return True
        if self.uptime is not None and other.uptime is not None:
            return abs(self.uptime - other.uptime) <= seconds
        mine, theirs = self.moment, other.moment
        if mine is not None and theirs is not None:
            return abs((mine - theirs).total_seconds()) <= seconds
        return False


def local_now() -> datetime:
    return datetime.now(UTC).astimezone()


def parse_iso(text: str) -> datetime | None:
    """An ISO 8601 time as journalctl and dmesg print it (`,` or `.`, `+HHMM` or `+HH:MM`)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _parse_ctime(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").astimezone()
    except ValueError:
        return None


def _guess_year(text: str, now: datetime) -> datetime | None:
    # RFC 3164 and journalctl short carry no year: assume the latest one not in the future.
    try:
        month = _MONTHS.index(text[:3]) + 1
        day = int(text[4:6])
        hour, minute, second = (int(part) for part in text[7:15].split(":"))
    except (ValueError, IndexError):
        return None
    for year in (now.year, now.year - 1):
        try:
            candidate = datetime(year, month, day, hour, minute, second, tzinfo=now.tzinfo)
        except ValueError:
            continue
        if candidate <= now + timedelta(days=1):
            return candidate
    return None


def split_prefix(line: str, now: datetime | None = None) -> tuple[Stamp, str]:
    """The time printed in front of a kernel message, and the message itself."""
    line = line.rstrip("\r\n")
    for kind, pattern in _PREFIXES:
        match = pattern.match(line)
        if match is None:
            continue
        text: str = match.group("time")
        rest: str = match.group("rest")
        if kind == "uptime":
            return Stamp(text, uptime=float(text)), rest
        if kind in ("iso", "short"):
            header = _SYSLOG_HEADER.match(rest)
            if header is not None:
                rest = header.group("msg")
        uptime = None
        inner = _INNER_UPTIME.match(rest)
        if inner is not None:
            rest, uptime = inner.group("rest"), float(inner.group("time"))
        if kind == "ctime":
            return Stamp(text, when=_parse_ctime(text), uptime=uptime), rest
        if kind == "iso":
            return Stamp(text, when=parse_iso(text), uptime=uptime), rest
        return Stamp(text, uptime=uptime, yearless=_guess_year(text, now or local_now())), rest
    return Stamp(None), line


def parse_time_bound(text: str, now: datetime | None = None) -> datetime:
    """`--since`/`--until` as journalctl takes them: ISO dates, today, yesterday, -24h, -30min.

    Raises UsageError naming the value if it is none of these.
    """
    now = now or local_now()
    value = text.strip()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1),
             "tomorrow": midnight + timedelta(days=1)}
    if value in named:
        return named[value]
    relative = _RELATIVE.match(value)
    if relative:
        unit = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}[relative.group("unit")]
        try:
            return now - timedelta(seconds=int(relative.group("n")) * unit)
        except OverflowError:
            raise UsageError(
                f"the time {text!r} is before the year 1: give a nearer one.") from None
    parsed = parse_iso(value)
    if parsed is None:
        raise UsageError(
            f"cannot read the time {text!r}: use 'YYYY-MM-DD HH:MM[:SS]', today, yesterday "
            "or a relative time like -24h."
        )
    return parsed

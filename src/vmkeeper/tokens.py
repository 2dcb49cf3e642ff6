"""How strong a bearer token is: refused at start when a guess could find it."""

from __future__ import annotations

import math
import string

# A bearer token must be at least this hard to guess (128 bits, the strength of a random UUID).
TOKEN_MIN_BITS = 128


def token_bits(token: str) -> float:
    """Strength as length × log2(the alphabet its character classes span): 32 hex digits give
    165, 22 characters of base64 131, a 16-digit hex string 83."""
    pool = sum(size for chars, size in _CLASSES if any(c in chars for c in token))
    return len(token) * math.log2(pool) if pool else 0.0


_CLASSES = ((string.ascii_lowercase, 26), (string.ascii_uppercase, 26), (string.digits, 10),
            (string.punctuation, 32))


def check_token(token: str) -> None:
    """Raise ValueError (worded for the operator, never quoting the token) if it is too weak."""
    if not token.strip():
        raise ValueError("the token is empty or only whitespace; set a random one, e.g. "
                         "`openssl rand -hex 32`")
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError("a bearer token must be printable ASCII without spaces (HTTP headers "
                         "carry nothing else); set a random one, e.g. `openssl rand -hex 32`")
    if token_bits(token) < TOKEN_MIN_BITS or len(set(token)) < 8:
        raise ValueError(f"the token is too short to resist guessing (under {TOKEN_MIN_BITS} "
                         "bits, e.g. fewer than 32 hex digits); set a random one, e.g. "
                         "`openssl rand -hex 32`")

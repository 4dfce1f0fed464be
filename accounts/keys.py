"""The API key format: `drk_<prefix>_<secret><checksum>`.

- prefix: 10 base62 characters, public, stored and indexed, shown in lists;
- secret: 43 base62 characters (256 bits of entropy), never stored, only its SHA-256;
- checksum: 6 base62 characters of CRC32 over everything before it, as GitHub's token format
  does, so secret scanners can validate a leaked key offline and a mistyped key is refused
  before any database query.

A fast hash is right here: the secret is random with 256 bits of entropy, so there is nothing
to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_PREFIX = "drk_"
PREFIX_LENGTH = 10
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
_KEY_RE = re.compile(
    rf"^{KEY_PREFIX}(?P<prefix>[0-9A-Za-z]{{{PREFIX_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    secret: str


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(ALPHABET[rem])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate() -> tuple[str, ParsedKey]:
    """A new raw key and its parts. The raw key is shown once and then forgotten."""
    parts = ParsedKey(prefix=_random(PREFIX_LENGTH), secret=_random(SECRET_LENGTH))
    body = f"{KEY_PREFIX}{parts.prefix}_{parts.secret}"
    return body + checksum(body), parts


def parse(raw: str) -> ParsedKey | None:
    """The parts of a well-formed key with a valid checksum, else None (no query needed)."""
    match = _KEY_RE.match(raw)
    if match is None:
        return None
    body = raw[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(checksum(body), match["checksum"]):
        return None
    return ParsedKey(prefix=match["prefix"], secret=match["secret"])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)

"""Building the bytes that go on the wire.

`email.message.EmailMessage` under the SMTP policy writes CRLF line endings and encodes long or
non-ASCII lines (quoted-printable or base64). On top of that, every bare CR or LF left anywhere
is turned into CRLF here, so no byte sequence can end the DATA phase early or smuggle a second
message (SMTP smuggling); smtplib then dot-stuffs lines that begin with a period.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import datetime
from email import policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

_ANY_EOL = re.compile(rb"\r\n|\r|\n")
# "Name <addr>" (the name bare or quoted) as validation accepts it; the rest is a bare address.
NAMED_ADDRESS = re.compile(r'^\s*(?P<name>"[^"\\]*"|[^<>()"\\,;@]*?)\s*<(?P<addr>[^<>\s]+)>\s*$')


def split_address(value: str) -> tuple[str, str]:
    """(display name, bare address) of a validated "Name <addr>" or "addr"."""
    match = NAMED_ADDRESS.match(value)
    if match is None:
        return "", value.strip()
    return match["name"].strip().strip('"'), match["addr"]


def address_of(value: str) -> str:
    return split_address(value)[1]


# MIME headers the email package sets on every part, with a handful of values repeated from one
# message to the next ('text/plain; charset="utf-8"', '7bit', '1.0').
_REPEATED = frozenset({"content-type", "content-transfer-encoding", "mime-version"})


class _HeaderFactory(HeaderRegistry):
    """The standard header registry, except that it makes each header's class once, and parses
    each repeated MIME header value once.

    `HeaderRegistry.__getitem__` builds a new class with `type()` for every header it parses:
    half a millisecond of a message's 2 ms build time on the bench machine (bench/README.md).
    The classes it would build for one name are all alike, so one is kept per name. Parsing
    Content-Type (stored, then read back and re-stored by `set_param` for the charset) was a
    tenth of a delivery's CPU; a header is an immutable string, so the last values parsed are
    kept and shared (test_mime builds messages in a row and finds the standard bytes).
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}
        self._parsed = functools.lru_cache(maxsize=64)(super().__call__)

    def __call__(self, name: str, value: str) -> Any:
        if name.lower() in _REPEATED:
            return self._parsed(name, value)
        return super().__call__(name, value)

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


def _plain(name: str, value: str, max_line_length: int) -> bool:
    """A header value the policy would write back as it is: short printable ASCII (no line
    ending, nothing to encode or fold, no padding) without encoded words (which it decodes)."""
    return (
        bool(value)
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
        and "=?" not in value
        and len(name) + 2 + len(value) <= max_line_length
    )


class _Policy(policy.EmailPolicy):
    """The SMTP policy, except that a plain header value is stored as the text it is.

    The standard policy parses every value it stores into a tree and folds the tree back into
    text when the message is written: most of a message's build time (bench/README.md). For a
    plain value that round trip gives back the value it started from — unstructured text, and
    the structured values we and the email package write (addresses, dates, content types) —
    so it is kept as text, as the compat32 policy keeps every value; anything else is parsed as
    before, and reading a header parses it then. test_mime builds whole messages both ways and
    finds the same bytes. One difference: a customer's own structured header (say Resent-Date)
    goes out as the customer wrote it instead of re-rendered.
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        # Content-Type is read again and again while a message is built and written: parsed
        # once when stored, not at every read.
        if isinstance(value, str) and name.lower() != "content-type" and _plain(name, value, self.max_line_length):
            return name, value
        return super().header_store_parse(name, value)


# Lines longer than this are re-encoded (RFC 5322 allows 998; 78 is the recommendation).
_POLICY = _Policy(linesep="\r\n", max_line_length=78, raise_on_defect=True, header_factory=_HeaderFactory())


class Unwritable(ValueError):
    """A header value the email package cannot write."""


def header_lines(name: str, value: str) -> list[bytes]:
    """The lines `name: value` goes on the wire as, in build_message and to_wire: parsed,
    encoded and folded by the same policy, every line ending CRLF. The email package decodes
    any RFC 2047 encoded word it finds while it parses, leniently (spaces inside, a missing
    separator), so what a value turns into is known only by writing it. Raises Unwritable."""
    try:
        stored = _POLICY.header_store_parse(name, value)[1]
        folded = _POLICY.fold_binary(name, stored)
    except Exception as exc:  # noqa: BLE001 (the email package raises many kinds on odd input)
        raise Unwritable(type(exc).__name__) from exc
    return _ANY_EOL.split(folded)[:-1]


def injects(name: str, value: str) -> bool:
    """Would `name: value` put anything on the wire but this one header (a line that is not a
    fold of it, or a NUL)? Raises Unwritable. Plain values (see _plain) go out as they are."""
    if _plain(name, value, _POLICY.max_line_length):
        return False
    lines = header_lines(name, value)
    return any(b"\x00" in line for line in lines) or any(line[:1] not in (b" ", b"\t") for line in lines[1:])


def normalize_eols(data: bytes) -> bytes:
    """Every line ending becomes CRLF: no bare CR, no bare LF."""
    return _ANY_EOL.sub(b"\r\n", data)


def _set_header(msg: EmailMessage, name: str, value: str | Address | list[Address]) -> None:
    """`msg[name] = value`; addresses that make a plain value are given as text (see _Policy)."""
    text = ", ".join(str(address) for address in value) if isinstance(value, list) else str(value)
    msg[name] = text if _plain(name, text, _POLICY.max_line_length) else value


def _header_address(value: str) -> Address:
    name, addr = split_address(value)
    local, _, domain = addr.rpartition("@")
    # By parts: from addr_spec, Address parses the (already validated) address again.
    return Address(display_name=name, username=local, domain=domain)


def _body_text(value: str) -> str:
    # The email package would keep a lone "\r" as-is inside a line; treat any line ending alike.
    return value.replace("\r\n", "\n").replace("\r", "\n")


def build_message(
    content: dict[str, Any],
    *,
    from_email: str,
    from_name: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    _set_header(msg, "From", Address(display_name=from_name, addr_spec=from_email) if from_name else from_email)
    _set_header(msg, "To", [_header_address(a) for a in content["to"]])
    if content.get("cc"):
        _set_header(msg, "Cc", [_header_address(a) for a in content["cc"]])
    # Bcc recipients are in the envelope only, never in a header.
    if content.get("reply_to"):
        _set_header(msg, "Reply-To", _header_address(content["reply_to"]))
    _set_header(msg, "Subject", content["subject"])
    _set_header(msg, "Date", format_datetime(date))
    _set_header(msg, "Message-ID", message_id)
    for name, value in (content.get("headers") or {}).items():
        _set_header(msg, name, value)

    text, html = content.get("text"), content.get("html")
    if text:
        msg.set_content(_body_text(text))
        if html:
            msg.add_alternative(_body_text(html), subtype="html")
    else:
        msg.set_content(_body_text(html), subtype="html")
    for attachment in content.get("attachments") or []:
        maintype, _, subtype = attachment["content_type"].partition("/")
        msg.add_attachment(
            base64.b64decode(attachment["content"]),
            maintype=maintype,
            subtype=subtype,
            filename=attachment["filename"],
        )
    return msg


def to_wire(msg: EmailMessage) -> bytes:
    """The message's bytes, CRLF only. Raises Unwritable unless its head is the headers set on
    it, in order, each on its line and folds: whatever a value hid that validation did not
    see (its own check is `injects`), a second header does not reach the provider."""
    data = normalize_eols(msg.as_bytes(policy=_POLICY))
    written = [
        line.partition(b":")[0].lower()
        for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]
    if written != [name.lower().encode("ascii") for name in msg]:
        raise Unwritable("The head holds a line that is not one of the message's headers.")
    return data


def envelope_recipients(content: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for value in [*content["to"], *(content.get("cc") or []), *(content.get("bcc") or [])]:
        seen.setdefault(address_of(value), None)
    return list(seen)

"""Parsing and checking a `POST /v1/send` body.

Strict on purpose: anything that could smuggle a header (CR or LF anywhere in a header value,
address, display name or filename, also hidden inside an RFC 2047 encoded word), text no mail
can carry (a lone surrogate, a NUL in a body), an address with
comments or several addresses in one, an override of a header we own, or bad base64 is refused
with `invalid_request` naming the field. Nothing is queued for a refused request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header
from typing import Any

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.crypto import salted_hmac

from drake.errors import InvalidRequest
from relay.mime import NAMED_ADDRESS, Unwritable, injects

ALLOWED_FIELDS = {"sender", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "attachments"}
# Headers 3drake writes itself; a customer may not set or override them.
RESERVED_HEADERS = {
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "return-path",
    "received",
    "mime-version",
}  # In-Reply-To and References stay allowed: customers thread their own conversations.
RESERVED_PREFIXES = ("dkim-", "content-", "arc-", "x-google-", "authentication-results")
# "\Z", not "$": "$" also matches before a trailing newline ("X-A\n", "text/plain\n").
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}\Z")  # RFC 5322 ftext: printable ASCII but ':'
_BARE_ADDRESS = re.compile(r"^[^\s<>()\[\]\\,;:\"]+@[^\s<>()\[\]\\,;:\"@]+\Z")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_SENDER_ID = re.compile(r"^snd_[A-Za-z0-9]{1,60}\Z")
# What the email package's parser takes for an encoded word: "=?", a charset, "?", an encoding,
# "?", anything (spaces included), "?=". Wider than RFC 2047 (_ENCODED_WORD), on purpose.
_LENIENT_ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?.*?\?=", re.DOTALL)
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\Z")
MAX_SUBJECT = 998
MAX_HEADER_VALUE = 998
# Checking a long non-ASCII value folds it as the email package would, some 50 ms each: without
# a cap, one request's worth of headers took minutes of a web worker's CPU.
MAX_HEADERS = 50


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: str  # base64, validated; decoded only when the MIME message is built
    size: int


@dataclass
class SendRequest:
    sender: str
    to: list[str]
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]

    def content(self) -> dict[str, Any]:
        """What goes into the encrypted outbox (everything but the sender id): what
        `dataclasses.asdict` gives without it, built directly (asdict's generic deep copy was 2%
        of a send under cProfile: bench/README.md; a test compares the two)."""
        return {
            "to": list(self.to),
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "reply_to": self.reply_to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "headers": dict(self.headers),
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "content": a.content, "size": a.size}
                for a in self.attachments
            ],
        }

    def _canonical(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def fingerprint(self, account_id: int) -> str:
        """A stable hash of the request, for Idempotency-Key comparisons. Keyed (HMAC under
        SECRET_KEY, per account, as the subject's hash is): it is stored outside the outbox's
        encryption, and a plain hash of a short templated message (a sign-in code) gives the
        content back to anyone who tries its few possible values."""
        return salted_hmac(
            "drake.relay.idempotency", f"{account_id}:{self._canonical()}", algorithm="sha256"
        ).hexdigest()

    def unkeyed_fingerprint(self) -> str:
        """The fingerprint as it was before it was keyed, to recognise keys stored then; they
        are all gone 24 hours after the upgrade (rotate_logs), and this with them."""
        return hashlib.sha256(self._canonical().encode("utf-8")).hexdigest()


def _encodable(value: str, field_name: str) -> None:
    """Refuse a lone surrogate (JSON's "\\ud800"): no mail can carry it as UTF-8."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest("This text holds a lone surrogate (\\ud800-\\udfff).", field=field_name) from exc


def _no_injection(value: str, field_name: str, *, header: str | None = None) -> None:
    """Refuse CR, LF or NUL in `value`, and, for the value of the header `header`, anything the
    email package would write as more than that header: an RFC 2047 encoded word it decodes
    into a line break (the email package decides what an encoded word is: relay.mime.injects)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise InvalidRequest("Line breaks are not allowed here (header injection).", field=field_name)
    _encodable(value, field_name)
    if header is None:
        return
    for word in _ENCODED_WORD.findall(value):
        # The clear cases first: a well-formed encoded word that does not decode, or hides a
        # line break even where the email package would write it as a fold.
        try:
            decoded = "".join(
                part.decode(charset or "ascii", errors="strict") if isinstance(part, bytes) else part
                for part, charset in decode_header(word)
            )
        except (LookupError, UnicodeDecodeError, binascii.Error, ValueError, HeaderParseError) as exc:
            raise InvalidRequest("This encoded word does not decode.", field=field_name) from exc
        if "\r" in decoded or "\n" in decoded or "\x00" in decoded:
            raise InvalidRequest("An encoded word hides a line break (header injection).", field=field_name)
    try:
        if injects(header, value):
            raise InvalidRequest("An encoded word hides a line break (header injection).", field=field_name)
    except Unwritable as exc:
        raise InvalidRequest(f"This value cannot be written as a {header} header.", field=field_name) from exc


def _address(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("An email address is required.", field=field_name)
    if len(value.strip()) > 320:
        # First: the encoded-word search below takes time quadratic in the length.
        raise InvalidRequest("This address is too long.", field=field_name)
    _no_injection(value, field_name)
    if holds_encoded_word(value):
        # The email package decodes an encoded word leniently wherever it finds one, a local
        # part included, and writes what it hides: "=?utf-8?q?a=0D=0AX-Evil=3A1?=@example.com"
        # added a header. An encoded display name would also be written back unquoted: a name
        # like "=?utf-8?q?a=40b.com=2C_x?=" would show the recipient a second address. A
        # literal "=?" ("2+2=? Team") is no encoded word: it has no "?X?...?=" after it.
        raise InvalidRequest(
            "Give the address and its display name as plain text; 3drake encodes them.", field=field_name
        )
    value = value.strip()
    match = NAMED_ADDRESS.match(value)
    if match:
        name, addr = match["name"].strip(), match["addr"]
    elif _BARE_ADDRESS.match(value):
        name, addr = "", value
    else:
        raise InvalidRequest(
            "Give one address as addr@example.com or Name <addr@example.com> (no comments or lists).", field=field_name
        )
    if not _BARE_ADDRESS.match(addr):
        raise InvalidRequest("This is not a valid email address.", field=field_name)
    try:
        validate_email(addr)  # Internationalized domains are accepted (checked as IDNA).
    except ValidationError as exc:
        raise InvalidRequest("This is not a valid email address.", field=field_name) from exc
    try:
        addr = wire_address(addr)
    except UnwritableAddress as exc:
        raise InvalidRequest(str(exc), field=field_name) from exc
    return f"{name} <{addr}>" if name else addr


def holds_encoded_word(text: str) -> bool:
    """Whether the email package would take part of `text` for an RFC 2047 encoded word and
    write what it hides (a line break, a second address): refused in display names, addresses
    and filenames here, and in a sender's From name (senders.validation)."""
    return _LENIENT_ENCODED_WORD.search(text) is not None


# UTS 46's deviation characters (and the capital sharp s): IDNA 2003, Python's "idna" codec,
# maps them away (ß and ẞ to "ss", ς to σ, the joiners to nothing), so a domain holding one
# became another, somebody else's; IDNA 2008 (registries, browsers) keeps them.
_IDNA_DEVIATIONS = frozenset("ßẞς\u200c\u200d")


def ascii_domain(domain: str) -> str:
    """`domain` in IDNA (punycode) as DNS knows it. Raises UnicodeError if it cannot be."""
    if _IDNA_DEVIATIONS.isdisjoint(domain):
        return domain.encode("idna").decode("ascii")
    return idna.encode(domain, uts46=True, transitional=False).decode("ascii")


def with_ascii_domain(address: str) -> str:
    """`local@domain` with the domain in IDNA (punycode), as messages go on the wire (no
    SMTPUTF8 needed from the provider) and into the log. Raises UnicodeError if it cannot be."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}"


# RFC 5321's longest path (256 octets with its angle brackets), and the log's column.
MAX_ADDRESS = 254


class UnwritableAddress(ValueError):
    """An address valid as typed that cannot go on the wire as 3drake sends (no SMTPUTF8)."""


def wire_address(address: str) -> str:
    """`local@domain` as it goes on the wire and into the log: the domain in IDNA, the local part
    ASCII (as a provider not asked for SMTPUTF8 takes it), MAX_ADDRESS characters at most.

    Django's validate_email matches its letters case-insensitively, so ſ, ı and the Kelvin
    sign (which fold into s, i and k) passed in a local part: accepted with a 202, the message
    then broke its delivery (smtplib writes RCPT TO in ASCII). And an address of 254
    characters as typed may be longer with its domain in IDNA. Raises UnwritableAddress."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise UnwritableAddress(
            "The part before the @ must be ASCII letters, digits and punctuation (3drake sends without SMTPUTF8)."
        )
    try:
        wired = with_ascii_domain(address)
    except UnicodeError as exc:
        raise UnwritableAddress("This is not a valid email address.") from exc
    if len(wired) > MAX_ADDRESS:
        raise UnwritableAddress(f"This address is over {MAX_ADDRESS} characters with its domain in IDNA.")
    return wired


def _address_list(value: Any, field_name: str, *, required: bool) -> list[str]:
    if value is None:
        if required:
            raise InvalidRequest("At least one recipient is required.", field=field_name)
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidRequest("Give an address or a list of addresses.", field=field_name)
    if required and not items:
        raise InvalidRequest("At least one recipient is required.", field=field_name)
    return [_address(item, f"{field_name}[{i}]") for i, item in enumerate(items)]


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("This must be a string.", field=name)
    if value:
        if "\x00" in value:
            # It went out raw in a 7bit part: no mail may carry one (RFC 5322, RFC 2045).
            raise InvalidRequest("A body cannot hold a NUL character (\\u0000).", field=name)
        _encodable(value, name)
    return value


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest('Give headers as an object, e.g. {"X-Campaign": "welcome"}.', field="headers")
    if len(value) > MAX_HEADERS:
        raise InvalidRequest(f"At most {MAX_HEADERS} headers.", field="headers")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        field_name = f"headers.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidRequest("This is not a valid header name.", field="headers")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
            raise InvalidRequest(f"The {name} header is set by 3drake and cannot be overridden.", field=field_name)
        if lowered in seen:
            raise InvalidRequest("This header is given twice.", field=field_name)
        seen.add(lowered)
        if not isinstance(header_value, str):
            raise InvalidRequest("Header values must be strings.", field=field_name)
        if len(header_value) > MAX_HEADER_VALUE:
            raise InvalidRequest("This header value is too long.", field=field_name)
        _no_injection(header_value, field_name, header=name)
        headers[name] = header_value
    return headers


def _attachments(value: Any) -> list[Attachment]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("Give attachments as a list.", field="attachments")
    if len(value) > settings.RELAY_MAX_ATTACHMENTS:
        raise InvalidRequest(f"At most {settings.RELAY_MAX_ATTACHMENTS} attachments.", field="attachments")
    result = []
    total = 0
    for i, item in enumerate(value):
        prefix = f"attachments[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest("Each attachment is an object with filename and content.", field=prefix)
        unknown = set(item) - {"filename", "content", "content_type"}
        if unknown:
            raise InvalidRequest(f"Unknown field {sorted(unknown)[0]!r}.", field=prefix)
        filename = item.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise InvalidRequest("A filename is required.", field=f"{prefix}.filename")
        if len(filename) > 255:
            # First: the encoded-word search below takes time quadratic in the length.
            raise InvalidRequest("A filename without a path, at most 255 characters.", field=f"{prefix}.filename")
        _no_injection(filename, f"{prefix}.filename")
        if holds_encoded_word(filename):
            # The email package decodes encoded words even inside a quoted parameter, leniently;
            # a name in any script goes out encoded by 3drake (RFC 2231).
            raise InvalidRequest("Give the filename as plain text; 3drake encodes it.", field=f"{prefix}.filename")
        if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in filename):
            # A control character or a line break for str.splitlines (VT, FF, FS, GS, RS, NEL,
            # U+2028/9): the email package refuses the Content-Disposition it would make.
            raise InvalidRequest("A filename without control characters.", field=f"{prefix}.filename")
        if "/" in filename or "\\" in filename:
            raise InvalidRequest("A filename without a path, at most 255 characters.", field=f"{prefix}.filename")
        content = item.get("content")
        if not isinstance(content, str):
            raise InvalidRequest("The content must be a base64 string.", field=f"{prefix}.content")
        compact = re.sub(r"\s+", "", content)
        try:
            size = len(base64.b64decode(compact, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("The content is not valid base64.", field=f"{prefix}.content") from exc
        total += size
        if total > settings.RELAY_MAX_ATTACHMENT_BYTES:
            raise InvalidRequest(
                f"Attachments may add up to {settings.RELAY_MAX_ATTACHMENT_BYTES} bytes.", field=f"{prefix}.content"
            )
        content_type = item.get("content_type")
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            if _container(content_type):
                content_type = "application/octet-stream"
        if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type.lower()):
            raise InvalidRequest("This is not a valid content type (type/subtype).", field=f"{prefix}.content_type")
        if _container(content_type.lower()):
            raise InvalidRequest(
                "An attachment is one part of bytes: not a multipart/* or message/delivery-status type.",
                field=f"{prefix}.content_type",
            )
        result.append(Attachment(filename=filename, content_type=content_type.lower(), content=compact, size=size))
    return result


def _container(content_type: str) -> bool:
    """A type the email package writes as parts of its own, not as an attachment's bytes: a
    multipart/* went out without parts or boundary (no mail program finds the file), and
    message/delivery-status made the worker's build raise (the message failed after its 202)."""
    return content_type.startswith("multipart/") or content_type == "message/delivery-status"


def parse_send_request(data: Any) -> SendRequest:
    """Check a send request body; raise InvalidRequest naming the first field at fault."""
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    unknown = set(data) - ALLOWED_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(f"Unknown field {name!r}.", field=name)
    sender = data.get("sender")
    if not isinstance(sender, str) or not _SENDER_ID.match(sender):
        raise InvalidRequest("Give the id of one of your senders (snd_...).", field="sender")
    # Counted before any is checked: a request's worth of addresses took seconds to validate.
    given = sum(len(value) if isinstance(value, list) else 1 for value in map(data.get, ("to", "cc", "bcc")) if value)
    if given > settings.RELAY_MAX_RECIPIENTS:
        raise InvalidRequest(f"At most {settings.RELAY_MAX_RECIPIENTS} recipients in all (to, cc and bcc).", field="to")
    to = _address_list(data.get("to"), "to", required=True)
    cc = _address_list(data.get("cc"), "cc", required=False)
    bcc = _address_list(data.get("bcc"), "bcc", required=False)
    reply_to = _address(data["reply_to"], "reply_to") if data.get("reply_to") is not None else None
    subject = data.get("subject")
    if not isinstance(subject, str):
        raise InvalidRequest("A subject is required.", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise InvalidRequest(f"The subject may have at most {MAX_SUBJECT} characters.", field="subject")
    _no_injection(subject, "subject", header="Subject")
    text, html = _text(data, "text"), _text(data, "html")
    if not text and not html:
        raise InvalidRequest("Give a text or an html body (or both).", field="text")
    return SendRequest(
        sender=sender,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        text=text,
        html=html,
        headers=_headers(data.get("headers")),
        attachments=_attachments(data.get("attachments")),
    )

"""The bytes on the wire: CRLF only, short lines, our Message-ID, Bcc nowhere in the headers."""

import base64
import re
from datetime import UTC, datetime
from email import policy

import pytest

from relay import mime

CONTENT = {
    "to": ["Bob <bob@example.com>"],
    "cc": ["carol@example.com"],
    "bcc": ["dave@example.com"],
    "reply_to": None,
    "subject": "Hi",
    "text": "x" * 5000 + "\nshort\rline\r\n.dot\n",
    "html": None,
    "headers": {},
    "attachments": [],
}


def build(content):
    return mime.build_message(
        content,
        from_email="alice@example.org",
        from_name="Alice",
        message_id="<id@example.org>",
        date=datetime(2026, 11, 24, tzinfo=UTC),
    )


def _wire():
    return mime.to_wire(build(CONTENT))


def test_every_line_ends_in_crlf():
    data = _wire()
    assert re.search(rb"(?<!\r)\n", data) is None
    assert re.search(rb"\r(?!\n)", data) is None


def test_long_lines_are_encoded():
    assert max(len(line) for line in _wire().split(b"\r\n")) <= 78


def test_bcc_is_only_in_the_envelope():
    assert b"dave@example.com" not in _wire()
    assert mime.envelope_recipients(CONTENT) == ["bob@example.com", "carol@example.com", "dave@example.com"]


def test_our_message_id_and_date():
    data = _wire()
    assert b"Message-ID: <id@example.org>\r\n" in data
    assert b"Date: Tue, 24 Nov 2026 00:00:00 +0000\r\n" in data


def test_normalize_eols():
    assert mime.normalize_eols(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd"


HEADERS = [
    ("Subject", "Hi"),
    ("Subject", "Invoice #42: due 2026-12-01 (EUR 10.00) [ref=abc; x=y]"),
    ("Subject", "=?utf-8?q?caf=C3=A9?= already encoded"),
    ("Subject", "Grüße aus Köln"),
    ("Subject", "word " * 20),
    ("Subject", " leading and trailing "),
    ("Subject", ""),
    ("Subject", "two  spaces and a trailing dot."),
    ("Subject", "<angle> & (paren) @at, comma; semi: colon"),
    ("Subject", "x" * 69),
    ("Subject", "x" * 70),
    ("X-Params", 'a=b; c="d"'),
    ("X-Campaign", "spring-2026"),
    ("X-Note", 'quotes " and \\ backslashes'),
    ("Date", "Tue, 24 Nov 2026 00:00:00 +0000"),
    ("Message-ID", "<0123456789abcdef@example.org>"),
    ("From", "alice@example.org"),
    ("From", mime.Address(display_name="Alice", addr_spec="alice@example.org")),
    ("From", mime.Address(display_name="Doe, Jane (Sales)", addr_spec="jane@example.org")),
    ("From", mime.Address(display_name='Ann "the boss" Lee', addr_spec="ann@example.org")),
    ("From", mime.Address(display_name="Zoë", addr_spec="zoe@example.org")),
    ("To", [mime.Address(addr_spec="bob@example.com")]),
    ("To", [mime.Address(display_name="Bob", addr_spec="bob@example.com"), mime.Address(addr_spec="c@example.com")]),
    ("To", [mime.Address(addr_spec=f"recipient{i}@example.com") for i in range(8)]),
    ("To", [mime.Address(display_name="J. R. Smith", addr_spec="jr@example.com")]),
    ("To", [mime.Address(addr_spec="o'neil+tag@example.com")]),
    ("To", [mime.Address(display_name="a.b", addr_spec="ab@xn--bcher-kva.example")]),
    ("Reply-To", mime.Address(display_name="Support Team", addr_spec="help@example.org")),
]


# The standard policy the fast one must agree with, byte for byte.
STANDARD = policy.SMTP.clone(max_line_length=78, raise_on_defect=True)


def test_headers_set_as_they_are_write_what_the_policy_would():
    for name, value in HEADERS:
        fast, slow = mime.EmailMessage(policy=mime._POLICY), mime.EmailMessage(policy=STANDARD)
        mime._set_header(fast, name, value)
        slow[name] = value
        assert mime.to_wire(fast) == mime.normalize_eols(slow.as_bytes(policy=STANDARD)), (name, value)


B64 = base64.b64encode(b"%PDF-1.4 binary \x00\x01\xff" * 40).decode()
MESSAGES = [
    {"to": ["bob@example.com"], "subject": "Hi", "text": "Hello"},
    {"to": ["Bob <bob@example.com>"], "cc": ["Zoë <zoe@example.org>"], "subject": "Grüße", "html": "<p>é</p>"},
    {
        "to": [f"r{i}@example.com" for i in range(12)],
        "reply_to": "Support, Team <help@example.org>",
        "subject": "A subject long enough that it has to be folded over more than one line of the message",
        "text": "x" * 2000 + "\n.\nend",
        "html": "<b>hi</b>",
        "headers": {"X-Campaign": "spring", "Resent-Date": "Tue, 24 Nov 2026 00:00:00 +0000"},
        "attachments": [{"filename": "report 2026.pdf", "content_type": "application/pdf", "content": B64}],
    },
    {"to": ["a@example.com"], "subject": "=?us-ascii?q?hello?=", "text": "plain\r\nlines\r\n"},
    {
        "to": ["a@example.com"],
        "subject": "Files",
        "html": "<p>only html</p>",
        "attachments": [
            {"filename": 'quote " and; semi.txt', "content_type": "text/plain", "content": B64},
            {"filename": "Übersicht.csv", "content_type": "text/csv", "content": B64},
            {
                "filename": "a-very-long-file-name-" * 4 + ".bin",
                "content_type": "application/octet-stream",
                "content": B64,
            },
        ],
    },
]


def test_whole_messages_are_the_bytes_the_standard_policy_writes(monkeypatch):
    from email import generator

    def built(content):
        boundaries = iter(f"==boundary-{n}==" for n in range(10))
        monkeypatch.setattr(generator.Generator, "_make_boundary", classmethod(lambda cls, text=None: next(boundaries)))
        msg = mime.build_message(
            {"cc": [], "bcc": [], "reply_to": None, "headers": {}, "attachments": [], **content},
            from_email="alice@example.org",
            from_name="Alice Example",
            message_id="<id@example.org>",
            date=datetime(2026, 11, 24, tzinfo=UTC),
        )
        return mime.to_wire(msg)

    # Twice over, in a row: the parsed MIME headers the factory shares between messages must
    # come out of one message as they went in.
    for content in MESSAGES + MESSAGES:
        fast = built(content)
        with monkeypatch.context() as standard:
            standard.setattr(mime, "_POLICY", STANDARD)
            standard.setattr(mime, "_set_header", lambda msg, name, value: msg.__setitem__(name, value))
            slow = built(content)
        assert fast == slow, content["subject"]


def test_injects_says_what_the_email_package_would_write():
    """The email package decodes an encoded word with a space inside (not RFC 2047) and writes
    the line break it hides: validation asks `injects`, which writes the header the same way."""
    spaced = "=?utf-8?q?Hi there=0D=0ABcc:_victim@example.org?="
    assert b"Bcc: victim@example.org" in mime.header_lines("Subject", spaced)
    assert mime.injects("Subject", spaced)
    assert mime.injects("X-Note", "=?utf-8?q?a=0D=0A=0D=0Abody?=")  # an empty line ends the head
    assert not mime.injects("Subject", "Hello")
    assert not mime.injects("Subject", "Grüße " * 30)  # encoded and folded: one header
    assert not mime.injects("X-Long", "word " * 150)
    with pytest.raises(mime.Unwritable):
        mime.injects("Resent-To", ":;" * 50)


def test_to_wire_refuses_a_head_with_a_header_nobody_set():
    """The last line of defence, for a value validation did not see through (it refuses
    these): an encoded word in a local part, which the email package decodes and writes."""
    content = {**CONTENT, "to": ["=?utf-8?q?a=0D=0AX-Evil=3A1?=@example.com"]}
    with pytest.raises(mime.Unwritable):
        mime.to_wire(build(content))
    content = {**CONTENT, "to": ["=?utf-8?q?a=0D=0ATo=3A_eve?=@example.com"]}  # a second To:
    with pytest.raises(mime.Unwritable):
        mime.to_wire(build(content))

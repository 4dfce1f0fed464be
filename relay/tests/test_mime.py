"""The bytes on the wire: CRLF only, short lines, our Message-ID, Bcc nowhere in the headers."""

import re
from datetime import UTC, datetime

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


def _wire():
    msg = mime.build_message(
        CONTENT,
        from_email="alice@example.org",
        from_name="Alice",
        message_id="<id@example.org>",
        date=datetime(2026, 11, 24, tzinfo=UTC),
    )
    return mime.to_wire(msg)


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

"""Bad input to POST /v1/send is a 400 naming the field, and nothing is queued."""

import base64
import json

import pytest

from relay.models import Message, OutboxContent

B64 = base64.b64encode(b"hello").decode()

CASES = [
    # Header injection, in every place a header value can come from.
    ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject"),
    ({"subject": "Hi\nthere"}, "subject"),
    ({"subject": "=?utf-8?q?Hi=0D=0ABcc:_victim@example.org?="}, "subject"),
    ({"subject": "=?utf-8?b?SGkNCkJjYzogdkBleGFtcGxlLm9yZw==?="}, "subject"),
    ({"to": "bob@example.com\r\nBcc: victim@example.org"}, "to[0]"),
    ({"to": ["bob@example.com", "Eve\n <eve@example.com>"]}, "to[1]"),
    ({"cc": ["carol@example.com\r"]}, "cc[0]"),
    ({"bcc": ["dave@example.com\nX: y"]}, "bcc[0]"),
    ({"reply_to": "r@example.com\r\nX-Evil: 1"}, "reply_to"),
    ({"to": "=?utf-8?q?Bob=0A?= <bob@example.com>"}, "to[0]"),
    # An encoded display name hiding a comma and an address: shown as a second recipient.
    ({"to": "=?utf-8?q?ceo=40bank.example=2C_x?= <x@example.com>"}, "to[0]"),
    ({"reply_to": "=?utf-8?q?Support?= <help@example.com>"}, "reply_to"),
    ({"headers": {"X-Campaign": "a\r\nBcc: victim@example.org"}}, "headers.X-Campaign"),
    ({"headers": {"X-Note": "=?utf-8?q?x=0Ay?="}}, "headers.X-Note"),
    # Encoded words the email package decodes though they are not well formed (a space inside),
    # hiding a line break: each put a Bcc or X-Evil line in the head (a review found them).
    ({"subject": "=?utf-8?q?Hi there=0D=0ABcc:_victim@example.org?="}, "subject"),
    ({"headers": {"X-Note": "=?utf-8?q?Hi there=0D=0ABcc:_victim@example.org?="}}, "headers.X-Note"),
    ({"to": "=?utf-8?q?a b=0D=0AX-Evil=3A_1?= <b@example.com>"}, "to[0]"),
    # ... and in a local part, which the email package decodes too.
    ({"to": "=?utf-8?q?a=0D=0AX-Evil=3A1?=@example.com"}, "to[0]"),
    ({"cc": ["Bob <=?utf-8?q?a=0D=0AX-Evil=3A1?=@example.com>"]}, "cc[0]"),
    ({"attachments": [{"filename": "=?utf-8?q?a b=0D=0AX: y?=.txt", "content": B64}]}, "attachments[0].filename"),
    # Encoded words that do not decode (bad base64: a 500 before).
    ({"subject": "=?utf-8?b?A?="}, "subject"),
    ({"headers": {"X-Note": "=?utf-8?b?A?="}}, "headers.X-Note"),
    # A value the email package cannot write as its header (it raised in the worker, for ever).
    ({"headers": {"Resent-To": ":;" * 50}}, "headers.Resent-To"),
    ({"attachments": [{"filename": "a\r\n.txt", "content": B64}]}, "attachments[0].filename"),
    # A line break for str.splitlines (VT, FF, FS, GS, RS...) in an ASCII filename: the email
    # package refuses the Content-Disposition it makes, so the worker failed it after a 202.
    ({"attachments": [{"filename": "report\x0c2024.pdf", "content": B64}]}, "attachments[0].filename"),
    ({"attachments": [{"filename": "a\x0bb.txt", "content": B64}]}, "attachments[0].filename"),
    # "$" matches before a trailing newline: a name or content type ending in "\n" got through
    # (the content type's newline reached the wire and ended the part's head early).
    ({"headers": {"X-Campaign\n": "welcome"}}, "headers"),
    ({"headers": {"Bcc\n": "victim@example.org"}}, "headers"),
    (
        {"attachments": [{"filename": "a.txt", "content": B64, "content_type": "text/plain\n"}]},
        "attachments[0].content_type",
    ),
    ({"sender": "snd_abc\n"}, "sender"),
    # Addresses that are more than one address, or comments.
    ({"to": "alice@example.org(<bob@example.org>"}, "to[0]"),
    ({"to": "alice@example.org, bob@example.org"}, "to[0]"),
    ({"to": "Alice <alice@example.org> <bob@example.org>"}, "to[0]"),
    ({"to": "not-an-address"}, "to[0]"),
    ({"to": []}, "to"),
    ({"to": ...}, "to"),
    ({"to": 42}, "to"),
    # Headers we own.
    ({"headers": {"From": "ceo@example.org"}}, "headers.From"),
    ({"headers": {"bcc": "x@example.org"}}, "headers.bcc"),
    ({"headers": {"Message-ID": "<x@y>"}}, "headers.Message-ID"),
    ({"headers": {"DKIM-Signature": "v=1"}}, "headers.DKIM-Signature"),
    ({"headers": {"Content-Type": "text/plain"}}, "headers.Content-Type"),
    ({"headers": {"Return-Path": "<x@y>"}}, "headers.Return-Path"),
    ({"headers": {"Bad Name": "x"}}, "headers"),
    ({"headers": {"X-Colon:": "x"}}, "headers"),
    ({"headers": "X-A: b"}, "headers"),
    # Each non-ASCII value takes the email package some 50 ms to fold: thousands of them fit in
    # a request, minutes of a web worker's CPU (a review measured 170 s for one).
    ({"headers": {f"X-Tag-{i}": "é " * 400 for i in range(51)}}, "headers"),
    # Bodies and attachments.
    ({"text": ..., "html": ...}, "text"),
    # A NUL went out raw in a 7bit body: no mail may carry one (RFC 5322, RFC 2045), and
    # servers that hold to it refused the message after its 202.
    ({"text": "Hi\x00Bob"}, "text"),
    ({"html": "<p>\x00</p>"}, "html"),
    ({"subject": ...}, "subject"),
    ({"attachments": [{"filename": "a.txt", "content": "not base64!"}]}, "attachments[0].content"),
    ({"attachments": [{"filename": "a.txt", "content": "aGVsbG8"}]}, "attachments[0].content"),
    ({"attachments": [{"filename": "../../etc/passwd", "content": B64}]}, "attachments[0].filename"),
    ({"attachments": [{"filename": "a.txt", "content": B64, "content_type": "text"}]}, "attachments[0].content_type"),
    ({"attachments": [{"content": B64}]}, "attachments[0].filename"),
    # A container type, not an attachment's bytes: a multipart without parts or boundary, and a
    # delivery-status report the worker could not build (failed after a 202).
    (
        {"attachments": [{"filename": "a.bin", "content": B64, "content_type": "multipart/mixed"}]},
        "attachments[0].content_type",
    ),
    (
        {"attachments": [{"filename": "a.bin", "content": B64, "content_type": "message/delivery-status"}]},
        "attachments[0].content_type",
    ),
    ({"attachments": {"filename": "a.txt"}}, "attachments"),
    # The request itself.
    ({"sender": "nope"}, "sender"),
    ({"sender": "snd_\x00abc"}, "sender"),  # PostgreSQL cannot compare text with a NUL: a 500 before.
    ({"bogus": 1}, "bogus"),
]


@pytest.mark.parametrize(("overrides", "field"), CASES)
def test_it_refuses_bad_input_naming_the_field(send, overrides, field):
    response = send(**overrides)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["field"] == field
    assert not Message.objects.exists()
    assert not OutboxContent.objects.exists()


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ('"subject": "Hel\\ud800lo"', "subject"),
        ('"text": "H\\ud800i"', "text"),
        ('"html": "<p>\\udfff</p>"', "html"),
        ('"headers": {"X-Note": "\\ud800"}', "headers.X-Note"),
        ('"to": "B\\ud800b <bob@example.com>"', "to[0]"),
        ('"attachments": [{"filename": "\\ud800.txt", "content": "aGVsbG8="}]', "attachments[0].filename"),
    ],
)
@pytest.mark.parametrize("idempotency_key", [None, "k1"])
def test_a_lone_surrogate_is_refused_naming_the_field(alice_api, alice_sender, where, field, idempotency_key):
    """Valid JSON ("\\ud800") that no mail can carry as UTF-8: a 500 before (the minimized
    subject's hash, the Idempotency-Key's fingerprint), or a message the worker could not
    build. A valid pair (an emoji) is text like any other."""
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    raw = json.dumps(body)[:-1] + ", " + where + "}"  # A key given twice: the last one counts.
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    response = alice_api.post("/v1/send", raw, content_type="application/json", **headers)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Message.objects.exists()
    assert (
        alice_api.post(
            "/v1/send", json.dumps({**body, "subject": "Hi \ud83d\ude00"}), content_type="application/json", **headers
        ).status_code
        == 202
    )


def test_too_many_recipients(send, settings):
    settings.RELAY_MAX_RECIPIENTS = 3
    response = send(to=["a@example.com", "b@example.com"], cc=["c@example.com"], bcc=["d@example.com"])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "to"


def test_too_many_recipients_are_refused_before_each_is_checked(send, monkeypatch):
    """Every address of a 10 MiB list was validated before the count was looked at: seconds of
    a web worker's CPU for one request the cap refuses anyway."""
    from relay import validation

    checked = []
    real = validation._address
    monkeypatch.setattr(validation, "_address", lambda value, field: checked.append(field) or real(value, field))
    response = send(to=[f"user{i}@example.com" for i in range(5000)])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "to"
    assert checked == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "=?a?b?c" * 20_000},
        {"reply_to": "=?a?b?c" * 20_000},
        {"attachments": [{"filename": "=?a?b?c" * 20_000, "content": B64}]},
    ],
    ids=["to", "reply_to", "filename"],
)
def test_an_over_long_address_or_filename_is_refused_at_once(send, overrides):
    """The encoded-word search ran over the whole value before its length was looked at, in
    time quadratic in it: 140 KB of "=?a?b?c" held a web worker for some 15 s, and a request's
    10 MiB for hours."""
    import time

    started = time.monotonic()
    response = send(**overrides)
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_attachments_over_the_cap(send, settings):
    settings.RELAY_MAX_ATTACHMENT_BYTES = 10
    content = base64.b64encode(b"x" * 11).decode()
    response = send(attachments=[{"filename": "big.bin", "content": content}])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "attachments[0].content"


def test_an_oversized_request_is_413(send, settings):
    settings.API_MAX_REQUEST_BYTES = 2048
    response = send(text="x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"
    assert not Message.objects.exists()


def test_a_body_that_is_not_an_object(alice_api, db):
    response = alice_api.post("/v1/send", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": '"Quiz: 2+2=? Team" <quiz@example.com>'},
        {"to": "a=?b@example.com"},
        {"attachments": [{"filename": "what=?.txt", "content": B64}]},
    ],
)
def test_a_literal_eq_question_mark_is_no_encoded_word(send, overrides):
    """A later review: 4c5969d refused any "=?" in an address or filename."""
    assert send(**overrides).status_code == 202


def test_internationalized_domains_are_accepted(send):
    response = send(to="Jürgen <jurgen@bücher.example>")
    assert response.status_code == 202
    assert Message.objects.get().to == ["jurgen@xn--bcher-kva.example"]


@pytest.mark.parametrize(
    ("typed", "wire"),
    [
        ("kontakt@straße.example", "kontakt@xn--strae-oqa.example"),
        ("info@ς.example", "info@xn--3xa.example"),
    ],
)
def test_a_domain_with_an_idna_deviation_goes_to_that_domain(send, typed, wire):
    """Python's "idna" codec is IDNA 2003, which maps ß to "ss" and ς to σ: mail for
    straße.example went to strasse.example, somebody else's domain. IDNA 2008 (registries,
    browsers) keeps them."""
    response = send(to=f"Jürgen <{typed}>")
    assert response.status_code == 202, response.content
    assert Message.objects.get().to == [wire]


def test_the_outbox_content_is_the_request_as_asdict_gives_it_without_the_sender():
    from dataclasses import asdict

    from relay.validation import parse_send_request

    request = parse_send_request(
        {
            "sender": "snd_x",
            "to": ["Bob <bob@example.com>"],
            "cc": ["c@example.com"],
            "bcc": ["d@example.com"],
            "reply_to": "r@example.com",
            "subject": "Hi",
            "text": "t",
            "html": "<p>h</p>",
            "headers": {"X-Tag": "1"},
            "attachments": [{"filename": "a.txt", "content": base64.b64encode(b"abc").decode()}],
        }
    )
    expected = asdict(request)
    del expected["sender"]
    content = request.content()
    assert content == expected
    assert list(content) == list(expected)
    assert list(content["attachments"][0]) == list(expected["attachments"][0])
    # Copies, as asdict's: the outbox content does not change with the request.
    assert content["to"] is not request.to and content["headers"] is not request.headers


@pytest.mark.parametrize(
    ("filename", "content_type", "sent_as"),
    [
        ("voice.vpm", None, "application/octet-stream"),  # mimetypes guesses multipart/voice-message.
        ("report.u8dsn", None, "message/global-delivery-status"),
        ("forwarded.eml", None, "message/rfc822"),
        ("forwarded.eml", "message/rfc822", "message/rfc822"),
        ("notes.txt", None, "text/plain"),
    ],
)
def test_an_accepted_attachment_can_be_built(filename, content_type, sent_as):
    """What validation accepts, the worker can write: a guessed container type (multipart/*)
    goes as plain bytes instead."""
    from datetime import UTC, datetime

    from relay.mime import build_message, to_wire
    from relay.validation import parse_send_request

    attachment = {"filename": filename, "content": B64}
    if content_type is not None:
        attachment["content_type"] = content_type
    body = {"sender": "snd_x", "to": "bob@example.com", "subject": "Hi", "text": "t", "attachments": [attachment]}
    request = parse_send_request(body)
    assert request.attachments[0].content_type == sent_as
    message = build_message(
        request.content(),
        from_email="alice@example.org",
        from_name="",
        message_id="<x@example.org>",
        date=datetime.now(UTC),
    )
    assert f"Content-Type: {sent_as}".encode() in to_wire(message)

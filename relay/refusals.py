"""Recipients a server refused at RCPT while it took others, and what a message says of them.

RFC 5321: a 4xx reply to RCPT refuses that recipient for now (greylisting, a full mailbox,
452 "too many recipients"), and 4.5.3.1.10 asks a client to read a 552 "too many recipients"
as a 452. The client sends the message to the recipients the server accepted and tries the
others again later, as Postfix does. So does delivery (relay.delivery): the recipients still
to be tried are kept in the message's encrypted content as `pending` (its addresses are
already there, Bcc ones included: nothing new is kept in clear), and the message stays queued
until each of them is accepted, refused for good, or its lifetime ends.

`Message.refused_recipients` says what became of the refused ones, as counts and reply codes
(never their addresses: Cc and Bcc addresses are not kept):

    {}                                   no recipient was refused
    {"count": n, "codes": {"550": n}}    n recipients refused for good: by a permanent reply,
                                         or still deferred when the message ended
    "expired": k                         of those n, k were deferred until the lifetime ended
    "deferred": {"count": d, "codes": {"450": d}}
                                         d recipients the server deferred, to be tried again;
                                         only while the message is queued or sending

A message some recipient accepted ends `sent`, whatever became of the others; `failed` means
no recipient has it.
"""

from __future__ import annotations

import re
from typing import Any

from relay.mime import address_of

Refused = dict[str, tuple[int, str]]  # address -> (code, cleaned reply), as relay.transport gives them


def is_temporary(code: int, reply: str) -> bool:
    """A refusal of one recipient for now: any 4xx, and a 552 that says "too many recipients"
    (RFC 5321 4.5.3.1.10; X.5.3 is that status in RFC 3463). Any other 552 (a mailbox over its
    storage allocation) is permanent."""
    if 400 <= code < 500:
        return True
    return code == 552 and ("5.5.3" in reply or "too many recipients" in reply.lower())


def unnamed(refused: Refused, content: dict[str, Any]) -> Refused:
    """The refusals with the address of each Cc and Bcc recipient taken out of its reply.

    Servers name the recipient they refuse ("450 4.2.0 <x@y>: Recipient address rejected"),
    and a reply is kept (the attempt's, `last_error`, the API): a deferred Bcc recipient's
    address was kept with it, where of Cc and Bcc only counts are (relay.models)."""
    if not refused:
        return refused  # Every recipient accepted: the delivery's common case costs nothing here.
    return {rcpt: (code, without_cc_bcc(reply, content)) for rcpt, (code, reply) in refused.items()}


def without_cc_bcc(reply: str, content: dict[str, Any]) -> str:
    """`reply` with every Cc and Bcc address of the message replaced by "…" (a To address is
    kept, as To is): also for a reply to RCPT that stops the whole session (a 421)."""
    shown = {address_of(value).lower() for value in content["to"]}
    for value in [*(content.get("cc") or []), *(content.get("bcc") or [])]:
        address = address_of(value)
        if address.lower() not in shown:
            reply = re.sub(re.escape(address), "…", reply, flags=re.IGNORECASE)
    return reply


def split(refused: Refused) -> tuple[Refused, Refused]:
    """(deferred, refused for good) of one transaction's refused recipients."""
    deferred = {rcpt: reply for rcpt, reply in refused.items() if is_temporary(*reply)}
    return deferred, {rcpt: reply for rcpt, reply in refused.items() if rcpt not in deferred}


def _codes(refused: Refused) -> dict[str, int]:
    codes: dict[str, int] = {}
    for code, _ in refused.values():
        codes[str(code)] = codes.get(str(code), 0) + 1
    return codes


def _add(into: dict[str, int], codes: dict[str, int]) -> dict[str, int]:
    merged = dict(into)
    for code, n in codes.items():
        merged[code] = merged.get(code, 0) + n
    return merged


def tally(previous: dict[str, Any], refused: Refused, deferred: Refused | None = None) -> dict[str, Any]:
    """`refused_recipients` after an attempt: what earlier attempts refused for good, plus
    `refused` (refused for good by this one), and `deferred` (deferred by this one) as the only
    ones still waiting. Every recipient deferred before was in this attempt, so its earlier
    deferral is replaced by what this attempt made of it. {} when nothing was ever refused."""
    count = previous.get("count", 0) + len(refused)
    result: dict[str, Any] = {}
    if count:
        result = {"count": count, "codes": _add(previous.get("codes", {}), _codes(refused))}
        if previous.get("expired"):
            result["expired"] = previous["expired"]
    if deferred:
        result.setdefault("count", 0)
        result.setdefault("codes", {})
        result["deferred"] = {"count": len(deferred), "codes": _codes(deferred)}
    return result


def give_up(previous: dict[str, Any], *, code: int | None, expired: bool) -> dict[str, Any]:
    """`refused_recipients` once a message ends with recipients still deferred: they count as
    refused, under `code` where the end is a permanent reply to them (say a 554 to the body),
    else under the code that last deferred each; `expired` when their lifetime is what ended."""
    waiting = previous.get("deferred")
    if not waiting:
        return previous
    codes = {str(code): waiting["count"]} if code is not None and code >= 500 else waiting["codes"]
    result: dict[str, Any] = {
        "count": previous.get("count", 0) + waiting["count"],
        "codes": _add(previous.get("codes", {}), codes),
    }
    gave_up = previous.get("expired", 0) + (waiting["count"] if expired else 0)
    if gave_up:
        result["expired"] = gave_up
    return result

"""The subject, minimized per the account's plan: the only form in which a subject is kept (and
what of the content a provider's reply quotes, taken out of it)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.utils.crypto import salted_hmac

from billing.models import SubjectPolicy

PREVIEW_CHARS = 4
# A subject (or filename) this short is no secret a reply could give away ("OK", "Hi"), and taking it out of
# every reply that holds the word ("250 OK") would lose what the server said.
REDACT_MIN_CHARS = 4


def minimize_subject(subject: str, *, policy: str, account_id: int) -> dict[str, object]:
    """`length`: just the length. `sha256`: a keyed hash (HMAC under SECRET_KEY, per account, so
    hashes cannot be matched across accounts or brute-forced without the key). `preview`: the
    first few characters (never more than half) and an ellipsis."""
    if policy == SubjectPolicy.LENGTH:
        return {"policy": "length", "length": len(subject)}
    if policy == SubjectPolicy.PREVIEW:
        # At most half of it: a subject of PREVIEW_CHARS or fewer ("Hi", "Oops") was kept whole.
        characters = _characters(subject)
        shown = min(PREVIEW_CHARS, len(characters) // 2)
        preview = "".join(characters[:shown]) + ("…" if len(characters) > shown else "")
        return {"policy": "preview", "preview": preview, "length": len(subject)}
    digest = salted_hmac("drake.relay.subject", f"{account_id}:{subject}", algorithm="sha256").hexdigest()
    return {"policy": "sha256", "sha256": digest}


_ZWJ = "\u200d"


def _is_regional_indicator(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _characters(text: str) -> list[str]:
    """`text` as a reader sees it, one character at a time: a letter with the accents drawn on
    it, an emoji with its variation selector, skin tone and what a zero-width joiner adds, a
    flag's two letters. Counted in code points, a short subject padded with those was shown
    whole. Close enough to Unicode's grapheme clusters for a preview that must stay short."""
    characters: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        last = characters[-1] if characters else ""
        if last and (
            unicodedata.category(ch) in ("Mn", "Mc", "Me")  # Accents, variation selectors.
            or ch == _ZWJ
            or last.endswith(_ZWJ)
            or "\U0001f3fb" <= ch <= "\U0001f3ff"  # Skin tones.
            or (_is_regional_indicator(ch) and len(last) == 1 and _is_regional_indicator(last))
        ):
            characters[-1] += ch
        else:
            characters.append(ch)
    return characters


def subject_hash(subject: str, *, account_id: int) -> str:
    """The same keyed hash, for a customer searching their log by an exact subject."""
    return str(minimize_subject(subject, policy=SubjectPolicy.SHA256, account_id=account_id)["sha256"])


def without_content(text: str, content: dict[str, Any]) -> str:
    """`text`, a provider's reply, with the message's subject and attachment filenames taken
    out wherever it quotes them (any case, any run of spaces): content filters name what they
    refuse ("554 5.7.1 Message 'Your code is 493817' rejected", "Attachment 'x.exe' blocked"),
    and a reply is kept, where the subject is only in its minimized form and a filename not at all."""
    quoted = [content.get("subject") or "", *(a.get("filename") or "" for a in content.get("attachments") or [])]
    lowered = text.lower() if text.isascii() else ""
    for value in quoted:
        words = value.split()
        if len(" ".join(words)) < REDACT_MIN_CHARS:
            continue
        if lowered and value.isascii() and words[0].lower() not in lowered:
            continue  # Not quoted (a delivery's usual case): no pattern to build.
        text = re.sub(r"\s+".join(map(re.escape, words)), "…", text, flags=re.IGNORECASE)
    return text

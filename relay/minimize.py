"""The subject, minimized per the account's plan: the only form in which a subject is kept."""

from __future__ import annotations

from django.utils.crypto import salted_hmac

from billing.models import SubjectPolicy

PREVIEW_CHARS = 4


def minimize_subject(subject: str, *, policy: str, account_id: int) -> dict[str, object]:
    """`length`: just the length. `sha256`: a keyed hash (HMAC under SECRET_KEY, per account, so
    hashes cannot be matched across accounts or brute-forced without the key). `preview`: the
    first few characters (never more than half) and an ellipsis."""
    if policy == SubjectPolicy.LENGTH:
        return {"policy": "length", "length": len(subject)}
    if policy == SubjectPolicy.PREVIEW:
        # At most half of it: a subject of PREVIEW_CHARS or fewer ("Hi", "Oops") was kept whole.
        shown = min(PREVIEW_CHARS, len(subject) // 2)
        preview = subject[:shown] + ("…" if len(subject) > shown else "")
        return {"policy": "preview", "preview": preview, "length": len(subject)}
    digest = salted_hmac("drake.relay.subject", f"{account_id}:{subject}", algorithm="sha256").hexdigest()
    return {"policy": "sha256", "sha256": digest}


def subject_hash(subject: str, *, account_id: int) -> str:
    """The same keyed hash, for a customer searching their log by an exact subject."""
    return str(minimize_subject(subject, policy=SubjectPolicy.SHA256, account_id=account_id)["sha256"])

"""The privacy policy page, rendered from the project's copy, and its acknowledgement notice."""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

POLICY_FILE = Path(settings.BASE_DIR) / "templates" / "legal" / "privacy-policy.txt"
_HEADING = re.compile(r"^(\d+(\.\d+)?\.?\s+\S.*|Summary|Credentials note|We do not inspect message content)$")


@cache
def policy() -> dict[str, Any]:
    lines = POLICY_FILE.read_text(encoding="utf-8").splitlines()
    updated = date.fromisoformat(lines[0].removeprefix("Last updated:").strip())
    blocks: list[dict[str, Any]] = []
    for raw in lines[1:]:
        line = raw.strip()
        if not line:
            continue
        if _HEADING.match(line):
            blocks.append({"kind": "h", "text": line})
        elif line.startswith("- "):
            if not blocks or blocks[-1]["kind"] != "ul":
                blocks.append({"kind": "ul", "items": []})
            blocks[-1]["items"].append(line[2:])
        else:
            blocks.append({"kind": "p", "text": line})
    return {"updated": updated, "blocks": blocks}


def privacy_policy(request: HttpRequest) -> HttpResponse:
    return render(request, "legal/privacy.html", {"policy": policy()})


@login_required
@require_POST
def acknowledge(request: HttpRequest) -> HttpResponse:
    from accounts.models import User

    User.objects.filter(pk=request.user.pk).update(policy_acknowledged_at=policy()["updated"])
    after = request.POST.get("next", "")
    # This site only: "//evil.example" starts with "/" too (a review).
    safe = url_has_allowed_host_and_scheme(after, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return redirect(after if after.startswith("/") and safe else "accounts:dashboard")


def policy_notice(request: HttpRequest) -> dict[str, Any]:
    """Context processor: a notice when the policy changed since the customer last acknowledged it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    updated = policy()["updated"]
    if user.policy_acknowledged_at is None or user.policy_acknowledged_at < updated:
        return {"policy_notice": updated}
    return {}

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from drake.errors import PermissionDenied


def refuse_if_suspended(user: Any) -> None:
    """Raise PermissionDenied (403 permission_denied, SPEC) for an account staff suspended: its
    API keys, and the console's sends (the test email) alike."""
    if user is not None and getattr(user, "suspended_at", None) is not None:
        raise PermissionDenied("This account is suspended. Contact support.")


class AccountNotSuspended(BasePermission):
    """A suspended account's valid key is refused with 403 permission_denied (SPEC)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        refuse_if_suspended(request.user)
        return True

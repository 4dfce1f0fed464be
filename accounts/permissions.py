from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from drake.errors import PermissionDenied


class AccountNotSuspended(BasePermission):
    """A suspended account's valid key is refused with 403 permission_denied (SPEC)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is not None and getattr(user, "suspended_at", None) is not None:
            raise PermissionDenied("This account is suspended. Contact support.")
        return True

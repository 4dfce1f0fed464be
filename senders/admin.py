"""Support's view of senders: connection metadata only. The secret is never displayed in any form."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from drake.admin import AuditedAdmin
from drake.admin_actions import reason_action
from senders import actions
from senders.models import AddressBlock, Sender


@admin.register(Sender)
class SenderAdmin(AuditedAdmin):
    list_display = (
        "public_id",
        "from_email",
        "user",
        "provider",
        "host",
        "port",
        "security",
        "verified_at",
        "disabled_at",
    )
    list_filter = ("provider", "security", "verified_at", "disabled_at")
    linked_lookups = ("user__id__exact",)  # An account's senders (UserAdmin.related).
    list_select_related = ("user",)
    search_fields = ("public_id", "from_email", "host", "user__email")
    # password_encrypted is absent on purpose: not even "set"/"not set" is shown.
    fieldsets = (
        ("Sender", {"fields": ("public_id", "user", "provider", "from_email", "from_name")}),
        ("Connection", {"fields": ("host", "port", "security", "username")}),
        (
            "State",
            {
                "fields": (
                    "verified_at",
                    "last_verify_error",
                    "disabled_at",
                    "disabled_reason",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    readonly_fields = (
        "public_id", "user", "provider", "from_email", "from_name", "host", "port", "security", "username",
        "verified_at", "last_verify_error", "paused_at", "paused_until", "paused_reason", "disabled_at",
        "disabled_reason", "created_at", "updated_at",
    )  # fmt: skip
    actions = (
        reason_action(
            "pause",
            "Pause delivery through the selected senders",
            lambda sender, reason, request: actions.pause_sender(
                sender, f"Paused by support: {reason}", actor=request.user, request=request
            ),
            permission="pause",
            help_text=(
                "Shown to the customer as the reason, and kept in the audit log. The customer lifts a pause "
                "by updating or verifying the sender: to stop a sender for good, disable it."
            ),
        ),
        reason_action(
            "resume",
            "Resume the selected senders",
            lambda sender, reason, request: actions.resume_sender(sender, reason, actor=request.user, request=request),
            permission="pause",
        ),
        reason_action(
            "disable",
            "Disable the selected senders (the customer cannot undo this)",
            lambda sender, reason, request: actions.disable_sender(sender, reason, actor=request.user, request=request),
            permission="disable",
            help_text=(
                "Shown to the customer as the reason, and kept in the audit log. From the next request on "
                "the API refuses to send with these senders, and their queued messages fail; updating or "
                "verifying them does not enable them again, only staff do."
            ),
        ),
        reason_action(
            "enable",
            "Enable the selected senders",
            lambda sender, reason, request: actions.enable_sender(sender, reason, actor=request.user, request=request),
            permission="disable",
        ),
    )

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("senders.pause_sender")

    def has_disable_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("senders.disable_sender")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Deletion destroys a customer's credentials: only the customer does that.
        return False


@admin.register(AddressBlock)
class AddressBlockAdmin(AuditedAdmin):
    """From addresses whose disabled sender its owner deleted: they may not be connected again
    on that account until support lifts the block (with a reason, audited)."""

    list_display = ("from_email", "user", "reason", "disabled_at", "created_at")
    list_select_related = ("user",)
    search_fields = ("from_email", "user__email")
    readonly_fields = ("user", "from_email", "reason", "disabled_at", "created_at")
    actions = (
        reason_action(
            "lift",
            "Lift the selected blocks (the customer may connect the address again)",
            lambda block, reason, request: actions.lift_address_block(
                block, reason, actor=request.user, request=request
            ),
            permission="disable",
        ),
    )

    def has_disable_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("senders.disable_sender")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # Lifted by the action, which asks for a reason and audits it.

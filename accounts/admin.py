"""Back office for accounts and keys: metadata only, never a hash or a secret."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import actions, twofactor
from accounts.models import ApiKey, AuthenticatorDevice, User
from drake.admin import AuditedAdmin
from drake.admin_actions import reason_action


def _reset_two_factor(user: User, reason: str, request: HttpRequest) -> bool:
    try:
        return twofactor.reset(user, reason=reason, actor=request.user, request=request)
    except PermissionDenied as exc:
        messages.error(request, f"{user.email}: {exc}")
        return False


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "display_prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(AuditedAdmin):
    list_display = ("email", "name", "plan", "is_active", "suspended_at", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "plan", "date_joined", "suspended_at")
    list_select_related = ("plan",)
    search_fields = ("email", "name")
    ordering = ("-date_joined",)
    readonly_fields = (
        "email",
        "date_joined",
        "activated_at",
        "last_login",
        "suspended_at",
        "suspension_reason",
        "related",
        "two_factor",
    )
    fieldsets = (
        ("Account", {"fields": ("email", "name", "plan", "date_joined", "activated_at", "last_login", "related")}),
        ("Suspension", {"fields": ("suspended_at", "suspension_reason")}),
        ("Access", {"fields": ("two_factor", "is_active", "is_staff", "is_superuser", "groups")}),
    )
    filter_horizontal = ("groups",)
    inlines = (ApiKeyInline,)
    actions = (
        reason_action(
            "suspend",
            "Suspend the API access of the selected accounts",
            lambda user, reason, request: actions.suspend_account(
                user, reason=reason, actor=request.user, request=request
            ),
            permission="suspend",
        ),
        reason_action(
            "unsuspend",
            "Lift the suspension of the selected accounts",
            lambda user, reason, request: actions.unsuspend_account(
                user, reason=reason, actor=request.user, request=request
            ),
            permission="suspend",
        ),
        reason_action(
            "reset_two_factor",
            "Reset two-factor authentication of the selected accounts",
            _reset_two_factor,
            permission="reset_two_factor",
        ),
    )

    @admin.display(description="Related records")
    def related(self, user: User) -> str:
        links = [
            ("Senders", "admin:senders_sender_changelist"),
            ("Messages", "admin:relay_message_changelist"),
            ("API requests", "admin:relay_apirequest_changelist"),
            ("Invoices", "admin:billing_invoice_changelist"),
            ("Audit events", "admin:auditlog_auditevent_changelist"),
        ]
        parts = []
        for label, name in links:
            field = "account_id__exact" if name.startswith("admin:auditlog") else "user__id__exact"
            parts.append(format_html('<a href="{}?{}={}">{}</a>', reverse(name), field, user.pk, label))
        return format_html_join(" · ", "{}", ((p,) for p in parts))

    @admin.display(description="Two-factor")
    def two_factor(self, user: User) -> str:
        # That it is on, never the device's key: resetting it is the list's action.
        device = twofactor.confirmed_device(user)
        return f"on, since {device.created_at:%Y-%m-%d}" if device is not None else "off"

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.suspend_account")

    def has_reset_two_factor_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.reset_two_factor")

    # Deleting an account here erases it as `delete_account` does (Stripe subscription
    # cancelled, secrets destroyed, the customer's own events and admin log entries gone),
    # not just its rows.
    def delete_model(self, request: HttpRequest, obj: User) -> None:
        self._erase(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        self._erase(request, list(queryset))

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        # Django logs a deletion before it deletes; delete_account may refuse, so each account's
        # deletion is logged by `_erase`, in the transaction of its erasure.
        return []

    def _erase(self, request: HttpRequest, users: list[User]) -> None:
        from accounts import privacy

        for user in users:
            try:
                with transaction.atomic():
                    super().log_deletions(request, [user])  # Audit event and admin log entry.
                    privacy.delete_account(user, actor=request.user, request=request, via="admin")
            except privacy.DeletionBlocked as exc:
                self.message_user(request, f"{user.email} was not deleted: {exc.for_staff()}", messages.ERROR)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """What the erasure takes with the accounts, asking no permission but to delete accounts.

        Django asks, for every row a deletion cascades to, whether its admin lets the staff
        member delete it, and ApiKeyAdmin, SenderAdmin and MessageAdmin let nobody delete one
        alone (a key is revoked, a sender deleted through its action, a log kept): so the page
        said "Cannot delete user" for any account that ever had a key, a sender or a message,
        and only an empty account was erasable here. The erasure (`privacy.delete_account`)
        deals with those records itself; whether the account may be deleted is decided by the
        delete permission on accounts (`accounts.delete_user`, superusers only by the roles),
        which Django checks before this page and the bulk action are reached."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed = {name for name in perms_needed if name == User._meta.verbose_name}
        return deleted, model_count, perms_needed, protected

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if User.objects.filter(pk=obj_id).exists():  # Refused (the message says why): not "deleted".
            return redirect(reverse("admin:accounts_user_change", args=[obj_id]))
        return super().response_delete(request, obj_display, obj_id)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        # Only superusers hand out staff rights or change plans; nobody does it by accident.
        if request.user.is_superuser:
            return self.readonly_fields
        return (*self.readonly_fields, "is_staff", "is_superuser", "groups", "plan", "is_active")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = ("display_prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at", "created_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__email")
    fields = ("user", "name", "display_prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    actions = (
        reason_action(
            "revoke",
            "Revoke the selected API keys",
            lambda key, reason, request: actions.revoke_api_key(
                key, actor=request.user, request=request, via="admin", reason=reason
            ),
            permission="revoke",
        ),
    )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.revoke_apikey")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are created by their owners, who alone see the raw value once.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# Django's and django-otp's own admins, replaced: every staff action audited, no secret shown
# (TOTPDevice holds no rows any more: accounts.AuthenticatorDevice keeps authenticators).
for _model in (Group, TOTPDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(Group)
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    """The staff roles (setup_roles): who may do what in the back office."""


@admin.register(AuthenticatorDevice)
class AuthenticatorDeviceAdmin(AuditedAdmin):
    """A customer's or staff member's authenticator: that it exists, never its key (django-otp's
    own TOTPDevice admin showed the key and its QR code, to any staff who could view devices). A superuser
    may delete one for a person who lost their phone, who then signs in with the password alone
    and sets up a new one; the deletion is audited as any other. The accounts list's "Reset
    two-factor" action (Support's too) does that for all of an account's devices, with a reason."""

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    list_select_related = ("user",)
    search_fields = ("user__email", "name")
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

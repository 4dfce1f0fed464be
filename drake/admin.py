"""The staff back office: Django's admin with a second factor and an audit trail.

- With ADMIN_REQUIRE_2FA (on whenever DEBUG is off), only staff whose session was verified
  with a TOTP code (django-otp) get in; the login form asks for the code.
- AuditedAdmin records every view of a customer's object (its page, its history, the page
  confirming its deletion, one object's or a selection's), every change list a staff member opens, and every change,
  addition or deletion, as audit events. Its change lists filter only by what they offer.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.filters import SimpleListFilter
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Field, Model
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

from auditlog.events import record


class AdminLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin login shows its device menu only after a failed try, then refuses a code
    without a device ("Please select a device."): with one device, the code alone is enough."""

    error_messages = {
        **OTPAdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct email address, password and code for a staff account.",
    }

    def clean(self) -> dict[str, Any]:
        """One refusal for every way of being wrong: a right password without its code read
        "Please enter your OTP token." and a wrong one the usual error, which told a guesser
        which password was right."""
        try:
            return super().clean()
        except forms.ValidationError as exc:
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login") from exc

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, for_verify=True))  # Inside clean_otp's transaction.
            if len(devices) == 1:
                device = devices[0]
        return device


class DrakeAdminSite(admin.AdminSite):
    site_header = "3drake back office"
    site_title = "3drake back office"
    index_title = "Back office"

    # The code is asked for only where it is required: with ADMIN_REQUIRE_2FA off (development)
    # the login form asked for it all the same, and refused staff who had no authenticator.
    @property
    def login_form(self) -> type[AuthenticationForm]:  # type: ignore[override]
        return AdminLoginForm if settings.ADMIN_REQUIRE_2FA else AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return "otp/admin111/login.html" if settings.ADMIN_REQUIRE_2FA else None

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Django's admin login, throttled and audited as the console's is (the same buckets:
        accounts.throttles): it was neither, so staff passwords could be guessed here as fast as
        a client could post, and nobody would see it."""
        from accounts.throttles import account_typed, email_domain, login_limited
        from accounts.views import ratelimited

        if request.method != "POST":
            return super().login(request, extra_context)
        if login_limited(request):
            record("login.throttled", request=request, detail={"email_domain": email_domain(request), "via": "admin"})
            return ratelimited(request, None)
        response = super().login(request, extra_context)
        if request.user.is_authenticated and response.status_code == 302:
            record(
                "login.succeeded", actor=request.user, account=request.user, request=request, detail={"via": "admin"}
            )
        else:
            record("login.failed", account=account_typed(request), request=request, detail={"via": "admin"})
        return response

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Django's page (its form, template and context) served by the console's view, so
        audited and throttled as the console's password change is: `password.changed` (via
        admin), and LOGIN_RATE_PER_ACCOUNT tries in the console's bucket, one allowance for
        both. It was neither: no event, and an unlimited check of the current password for
        whoever held a staff session."""
        from django.contrib.admin.forms import AdminPasswordChangeForm

        from accounts.views import PasswordChangeView

        url = reverse("admin:password_change_done", current_app=self.name)
        context = {**self.each_context(request), **(extra_context or {})}
        view = PasswordChangeView.as_view(
            form_class=AdminPasswordChangeForm,
            success_url=url,
            template_name=self.password_change_template or "registration/password_change_form.html",
            extra_context=context,
            via="admin",
        )
        request.current_app = self.name
        return view(request)

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        """Not here (404). Django's autocomplete searched the accounts, their keys or their
        messages by any admin's search fields for whoever could view them, and recorded
        nothing (the same search on a change list is `admin.listed`). No admin declares
        autocomplete_fields, so no form needs it; one that does audits this view first."""
        raise Http404

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if settings.ADMIN_REQUIRE_2FA:
            return bool(getattr(request.user, "is_verified", lambda: False)())
        return True


def _account_of(obj: Model) -> Any:
    from accounts.models import User
    from auditlog.models import AuditEvent

    if isinstance(obj, User):
        return obj
    if isinstance(obj, AuditEvent):  # One of the account's own records (its IPs, its logins).
        return User(pk=obj.account_id) if obj.account_id is not None else None
    return getattr(obj, "user", None)


# The comparisons Django's own list filters make on their field (AllValuesFieldListFilter's is
# the bare field path; a relation's filter compares its target field, e.g. `plan__id__exact`).
_FILTER_COMPARISONS = ("exact", "isnull", "gte", "lt", "isempty")


def _record_viewed(request: HttpRequest, obj: Model, *, page: str = "") -> None:
    record(
        "admin.viewed",
        actor=request.user,
        account=_account_of(obj),
        target=obj,
        request=request,
        detail={"page": page} if page else None,
    )


class AuditedAdmin(admin.ModelAdmin):
    """Every staff access to customer data leaves an audit event (privacy policy, section 7)."""

    # Lookups that a link elsewhere in the back office opens this list with, though no filter of
    # the list offers them: an account's "Related records" (accounts.admin.UserAdmin.related).
    linked_lookups: tuple[str, ...] = ()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Only the lookups this list offers: its filters, its date hierarchy, `linked_lookups`.

        Django's own check lets through a lookup on any column of the model, so a query string
        filtered by secrets: `?password__startswith=pbkdf2_sha256$...` listed the account
        while the guess was right and not otherwise, which read a password hash (an API key's
        secret hash, a sender's encrypted password) one character at a time, and each guess was
        written into the `admin.listed` event. Anything else is refused as Django refuses a
        disallowed lookup (DisallowedModelAdminLookup: 400).
        """
        if lookup not in self._offered_lookups(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def _offered_lookups(self, request: HttpRequest | None) -> set[str]:
        offered = set(self.linked_lookups)
        if self.date_hierarchy:
            offered.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        for item in self.get_list_filter(request) if request is not None else self.list_filter:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                offered.add(item.parameter_name)
                continue
            path = item[0] if isinstance(item, list | tuple) else item
            if isinstance(path, Field):
                path = path.name
            field = get_fields_from_path(self.model, path)[-1]
            offered.add(path)
            offered.update(f"{path}__{comparison}" for comparison in _FILTER_COMPARISONS)
            if field.is_relation:
                offered.add(f"{path}__{field.target_field.name}__exact")
        return offered

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        self._viewed(request, object_id, response)
        return response

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        # Django admin's log of the object, each entry naming it as shown ("alice@... via ...").
        response = super().history_view(request, object_id, extra_context)
        self._viewed(request, object_id, response, page="history")
        return response

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """What deleting `objs` takes with it; asked for by the single delete page and by the bulk
        action "Delete selected" alike. When that is to be shown, not deleted (no confirming
        "post", or protected records in the way), each object is recorded as viewed on its
        delete page: the confirmation lists every record it holds. Only the single page was
        audited (its own delete_view), the bulk action's confirmation not at all."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if not request.POST.get("post") or protected:
            for obj in objs:
                _record_viewed(request, obj, page="delete")
        return deleted, model_count, perms_needed, protected

    def _viewed(self, request: HttpRequest, object_id: str, response: HttpResponse, page: str = "") -> None:
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                _record_viewed(request, obj, page=page)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            query = {k: v[:100] for k, v in request.GET.items() if k != "p"}
            record(
                "admin.listed",
                actor=request.user,
                request=request,
                detail={"model": self.model._meta.label_lower, "query": query},
            )
        return response

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        record("admin.added", actor=request.user, account=_account_of(obj), target=obj, request=request)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        fields = sorted({f for change in (message or []) for f in change.get("changed", {}).get("fields", [])})
        record(
            "admin.changed",
            actor=request.user,
            account=_account_of(obj),
            target=obj,
            request=request,
            detail={"fields": fields},
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            record("admin.deleted", actor=request.user, account=_account_of(obj), target=obj, request=request)
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(AuditedAdmin):
    """Records that staff may look at but never add, change or delete (logs, billing mirrors)."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

"""Support's message log: metadata only, read-only. There is no content to show: it is never kept."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from drake.admin import ReadOnlyAdmin
from relay.models import ApiRequest, DeliveryAttempt, Message


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "finished_at", "outcome", "category", "smtp_code", "reply")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "user", "from_email", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "created_at")
    linked_lookups = ("user__id__exact",)  # An account's messages (UserAdmin.related).
    list_select_related = ("user",)
    search_fields = ("public_id", "user__email", "from_email", "provider_message_id")
    date_hierarchy = "created_at"
    inlines = (AttemptInline,)
    exclude = ("api_key",)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "api_key"]


@admin.register(ApiRequest)
class ApiRequestAdmin(ReadOnlyAdmin):
    """Usage metadata for support: who called what, when, with what result."""

    list_display = ("created_at", "user", "key_prefix", "method", "endpoint", "status", "error_type", "ip")
    list_filter = ("status", "error_type", "method", "created_at")
    linked_lookups = ("user__id__exact",)  # An account's requests (UserAdmin.related).
    list_select_related = ("user",)
    search_fields = ("user__email", "key_prefix", "endpoint", "ip")
    date_hierarchy = "created_at"

from django.contrib import admin

from auditlog.models import AuditEvent
from drake.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "actor_ip", "action", "target_type", "target_id", "account_id")
    list_filter = ("action", "target_type", "created_at")
    linked_lookups = ("account_id__exact",)  # An account's events (UserAdmin.related).
    search_fields = ("actor_label", "action", "target_id", "=account_id")
    date_hierarchy = "created_at"

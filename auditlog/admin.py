from django.contrib import admin
from django.http import HttpRequest

from auditlog.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "actor_ip", "action", "target_type", "target_id", "account_id")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_label", "action", "target_id", "=account_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

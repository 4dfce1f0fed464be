from django.contrib import admin

from billing.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "monthly_quota",
        "rate_per_minute",
        "retention_days",
        "subject_policy",
        "price_cents",
        "is_default",
        "is_public",
    )
    list_filter = ("subject_policy", "is_default", "is_public")
    search_fields = ("name", "slug", "stripe_price_id")

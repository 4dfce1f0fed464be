"""Billing in the back office. Finance (auditlog.roles) views plans, subscriptions, invoices and
Stripe events and exports the latter three as CSV; it edits nothing. Plans are edited by staff
holding billing.change_plan (no role grants it: a superuser); the rest mirrors Stripe, read-only."""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from auditlog.events import record
from billing.models import Invoice, Plan, StripeEvent, Subscription, in_units, money
from drake.admin import AuditedAdmin, ReadOnlyAdmin


@admin.register(Plan)
class PlanAdmin(AuditedAdmin):
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


# A cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: object) -> object:
    """The value as a CSV cell a spreadsheet shows and does not evaluate; a blank stays blank."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


@admin.action(description="Export the selected rows as CSV", permissions=["view"])
def export_csv(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    fields = [f.name for f in modeladmin.model._meta.fields]
    # After the model's own columns, so a sheet that reads the columns by position still can.
    extra = getattr(modeladmin, "csv_extra_columns", {})
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{modeladmin.model._meta.model_name}s.csv"'
    writer = csv.writer(response)
    writer.writerow([*fields, *extra])
    rows = 0
    for row in queryset.values(*fields):
        writer.writerow([_inert(v) for v in [*row.values(), *(column(row) for column in extra.values())]])
        rows += 1
    # An export is an access to each account's records: an event for the export, and one in
    # each account's trail, as a view of one of its records leaves.
    label = modeladmin.model._meta.label_lower
    record("admin.exported", actor=request.user, request=request, detail={"model": label, "rows": rows})
    if "user" in fields:
        for pk in queryset.order_by().values_list("user_id", flat=True).distinct():
            if pk is not None:
                record(
                    "admin.exported", actor=request.user, account=User(pk=pk), request=request, detail={"model": label}
                )
    return response


class FinanceAdmin(ReadOnlyAdmin):
    actions = (export_csv,)
    # Columns the CSV export adds to the model's fields: header -> value of a row (a dict).
    csv_extra_columns: dict[str, Callable[[dict[str, Any]], object]] = {}


@admin.register(Subscription)
class SubscriptionAdmin(FinanceAdmin):
    list_display = ("stripe_customer_id", "user", "plan", "status", "current_period_end", "past_due_since")
    list_filter = ("status", "plan", "current_period_end")
    list_select_related = ("user", "plan")
    search_fields = ("stripe_customer_id", "stripe_subscription_id", "user__email")
    date_hierarchy = "current_period_end"


@admin.register(Invoice)
class InvoiceAdmin(FinanceAdmin):
    list_display = ("number", "user", "due", "paid", "status", "period_start", "created_at")
    list_filter = ("status", "currency", "created_at")
    linked_lookups = ("user__id__exact",)  # An account's invoices (UserAdmin.related).
    list_select_related = ("user",)
    search_fields = ("number", "stripe_invoice_id", "stripe_customer_id", "user__email")
    date_hierarchy = "created_at"
    # The invoice's own page reads as the list does: its amounts as money, not the counts of the
    # currency's smallest unit (1900 for 19.00 USD and for 1,900 JPY alike; those are in the
    # export). Every field is read-only: the invoice mirrors Stripe's.
    fields = (
        "user",
        "stripe_invoice_id",
        "stripe_customer_id",
        "number",
        "due",
        "paid",
        "currency",
        "status",
        "period_start",
        "period_end",
        "hosted_invoice_url",
        "created_at",
    )
    readonly_fields = fields
    # amount_due and amount_paid stay exact integers in the currency's smallest unit, as Stripe's
    # API counts them (to reconcile with it); these are the same amounts in whole units (19.00,
    # 1900 for yen, 19.000 for dinars), the figures a ledger takes, whatever the currency.
    csv_extra_columns = {
        "amount_due_decimal": lambda row: in_units(row["amount_due"], row["currency"]),
        "amount_paid_decimal": lambda row: in_units(row["amount_paid"], row["currency"]),
    }

    @admin.display(description="Amount due", ordering="amount_due")
    def due(self, invoice: Invoice) -> str:
        return invoice.amount_display

    @admin.display(description="Amount paid", ordering="amount_paid")
    def paid(self, invoice: Invoice) -> str:
        return money(invoice.amount_paid, invoice.currency)


@admin.register(StripeEvent)
class StripeEventAdmin(FinanceAdmin):
    list_display = ("event_id", "type", "received_at")
    list_filter = ("type",)
    search_fields = ("event_id",)

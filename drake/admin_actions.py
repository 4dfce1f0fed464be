"""Admin actions that ask staff for a reason first, then call an audited action per object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from auditlog.events import record


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=300, widget=forms.Textarea(attrs={"rows": 3}), help_text="Kept in the audit log."
    )


def reason_action(
    name: str,
    label: str,
    perform: Callable[[Any, str, HttpRequest], bool],
    *,
    permission: str = "change",
    help_text: str | None = None,
) -> Callable[..., HttpResponse | None]:
    """An admin action `name` that shows a reason form, then runs `perform(obj, reason, request)`.
    `help_text` replaces the reason's help (say there what else it does and who sees the reason)."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if help_text is not None:
            form.fields["reason"].help_text = help_text
        if form.is_valid():
            done = sum(1 for obj in queryset if perform(obj, form.cleaned_data["reason"], request))
            modeladmin.message_user(request, f"{label}: {done} of {queryset.count()} changed.", messages.SUCCESS)
            return None
        # The page lists every record the action would touch (every match with "Select all",
        # not one page of them): a view of them, audited as the change list is.
        record(
            "admin.listed",
            actor=request.user,
            request=request,
            detail={"model": modeladmin.model._meta.label_lower, "action": name, "rows": queryset.count()},
        )
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": label,
            "objects": queryset,
            "form": form,
            "action": name,
            "opts": modeladmin.model._meta,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            # "Select all N": the queryset is every match, not the rows ticked; the form says so
            # again, or applying it acts on the ticked rows alone.
            "select_across": request.POST.get("select_across") == "1",
        }
        return TemplateResponse(request, "admin/reason_action.html", context)

    action.__name__ = name
    return admin.action(description=label, permissions=[permission])(action)

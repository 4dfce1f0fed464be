"""Django's autocomplete view (/admin/autocomplete/) is refused: found by a review, it searched
the accounts, their keys or their messages by any admin's search fields, answered with the
matching records to every staff member who could view them, and left no audit event (the same
search on the change list is `admin.listed`). Every admin view of customer data is an audit
event (README, Back office); no admin here declares autocomplete_fields, so no form needed it."""

import pytest
from django.contrib import admin

from auditlog.models import AuditEvent

pytestmark = pytest.mark.usefixtures("roles")


def test_support_cannot_search_accounts_through_the_autocomplete_view(client, sam, alice):
    client.force_login(sam)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "senders", "model_name": "sender", "field_name": "user", "term": "alice"},
    )
    assert response.status_code == 404
    assert "alice@example.org" not in response.content.decode()
    assert not AuditEvent.objects.filter(actor=sam, action__startswith="admin.").exists()  # Nothing was shown.


def test_no_admin_needs_the_autocomplete_view():
    """An admin declaring autocomplete_fields would get a widget that finds nothing: audit the
    view (DrakeAdminSite.autocomplete_view) before adding one."""
    declaring = [m._meta.label for m, a in admin.site._registry.items() if a.autocomplete_fields]
    assert declaring == []

"""The page confirming a deletion lists each object and every record it holds, so showing it
is an audit event (`admin.viewed`, page "delete"), for one object's delete page and for the
bulk action "Delete selected" alike. Found by a review: the single page was audited, the bulk
one left no event at all. Every admin view of customer data is an audit event (README, Back
office)."""

import pytest
from django.utils import timezone

from auditlog.models import AuditEvent
from auditlog.tests.conftest import STAFF_PASSWORD
from billing.models import UsageCounter

pytestmark = pytest.mark.usefixtures("roles")


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)


def _viewed(root):
    return AuditEvent.objects.filter(actor=root, action="admin.viewed")


def test_the_bulk_delete_confirmation_of_accounts_is_audited(client, root, alice, charlie):
    UsageCounter.objects.create(user=alice, period_start=timezone.now(), accepted=41)
    client.force_login(root)
    selected = {"action": "delete_selected", "_selected_action": [alice.pk, charlie.pk]}
    page = client.post("/admin/accounts/user/", selected)
    shown = page.content.decode()
    assert page.status_code == 200 and "Are you sure" in shown and alice.email in shown  # The account, listed.
    events = sorted(_viewed(root).values_list("account_id", "detail"))
    assert events == sorted([(alice.pk, {"page": "delete"}), (charlie.pk, {"page": "delete"})])


def test_the_single_delete_page_is_audited_once(client, root, alice):
    client.force_login(root)
    assert client.get(f"/admin/accounts/user/{alice.pk}/delete/").status_code == 200
    assert list(_viewed(root).values_list("account_id", "detail")) == [(alice.pk, {"page": "delete"})]


def test_a_confirmed_deletion_is_a_deletion_not_a_view(client, root, alice, charlie, django_user_model):
    client.force_login(root)
    confirmed = {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"}
    assert client.post("/admin/accounts/user/", confirmed).status_code == 302
    assert client.post(f"/admin/accounts/user/{charlie.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not django_user_model.objects.filter(pk__in=[alice.pk, charlie.pk]).exists()
    assert not _viewed(root).exists()
    assert AuditEvent.objects.filter(actor=root, action="account.deleted").count() == 2

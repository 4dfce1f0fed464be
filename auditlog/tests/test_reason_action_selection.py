"""A back-office action with a reason, run on "all N" matching records (the change list's
"Select all" link), applies to every one of them, as its confirmation page lists."""

import re

from django.contrib.auth import get_user_model


def _confirmation_form(page: str) -> dict[str, list[str]]:
    """The hidden fields the confirmation page's form posts back, as a browser sends them."""
    form = page[page.index('<form method="post">') :]
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[: form.index("</form>")]
    ):
        fields.setdefault(name, []).append(value)
    return fields


def test_suspending_every_matching_account_suspends_every_one(client, sam, alice, charlie):
    """Sam searches the accounts of a fraud ring, clicks "Select all", suspends them with a
    reason: the confirmation page listed every match, but the form it posted named only the
    rows ticked on the page, so the others kept sending and the message said it was done."""
    client.force_login(sam)
    url = "/admin/accounts/user/?q=example"  # Alice's and Charlie's addresses, not Sam's.
    first = client.post(url, {"action": "suspend", "_selected_action": [alice.pk], "select_across": "1"})
    assert first.status_code == 200
    page = first.content.decode()
    assert alice.email in page and charlie.email in page  # What the action says it will suspend.
    client.post(url, {**_confirmation_form(page), "reason": "one fraud ring"})
    suspended = get_user_model().objects.filter(suspended_at__isnull=False)
    assert sorted(suspended.values_list("email", flat=True)) == [alice.email, charlie.email]


def test_the_confirmation_page_listing_every_match_is_audited(client, sam, alice, charlie):
    """The confirmation page lists every account the action would touch, all matches with
    "Select all", not one page of them: a list of customers' addresses that nothing recorded
    (the change list's own `admin.listed` is for the page it showed), even when Sam cancelled."""
    from auditlog.models import AuditEvent

    client.force_login(sam)
    client.post(
        "/admin/accounts/user/?q=example", {"action": "suspend", "_selected_action": [alice.pk], "select_across": "1"}
    )
    event = AuditEvent.objects.get(action="admin.listed", detail__action="suspend")
    assert (event.actor, event.detail["model"], event.detail["rows"]) == (sam, "accounts.user", 2)

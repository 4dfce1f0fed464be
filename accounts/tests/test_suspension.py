"""Staff suspension: the API answers 403 permission_denied, and the act is audited."""

from accounts import actions
from auditlog.models import AuditEvent


def test_a_suspended_account_gets_403_and_it_is_audited(alice_api, alice, django_user_model):
    staff = django_user_model.objects.create_user("support@3drake.test", "a sturdy passphrase", is_staff=True)
    actions.suspend_account(alice, reason="phishing reports", actor=staff)
    response = alice_api.get("/v1/account")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"
    event = AuditEvent.objects.get(action="account.suspended")
    assert (event.actor, event.account_id, event.detail["reason"]) == (staff, alice.pk, "phishing reports")

    actions.unsuspend_account(alice, reason="resolved", actor=staff)
    assert alice_api.get("/v1/account").status_code == 200
    assert AuditEvent.objects.filter(action="account.unsuspended").count() == 1


def test_staff_suspend_from_the_admin_with_a_reason(client, alice, alice_api, django_user_model):
    root = django_user_model.objects.create_superuser("root@3drake.test", "a sturdy passphrase")
    client.force_login(root)
    ask = client.post("/admin/accounts/user/", {"action": "suspend", "_selected_action": [alice.pk]})
    assert ask.status_code == 200 and "Kept in the audit log" in ask.content.decode()
    alice.refresh_from_db()
    assert alice.suspended_at is None  # Nothing happens before a reason is given.
    done = client.post(
        "/admin/accounts/user/",
        {"action": "suspend", "_selected_action": [alice.pk], "apply": "1", "reason": "spam complaints"},
    )
    assert done.status_code == 302
    assert alice_api.get("/v1/account").status_code == 403
    event = AuditEvent.objects.get(action="account.suspended")
    assert (event.actor, event.detail["reason"]) == (root, "spam complaints")

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

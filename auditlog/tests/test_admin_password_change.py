"""A staff member's password change on the back office's own page (/admin/password_change/).

Found by a review: it left no audit event, where the console's records `password.changed`.
Every staff action in the admin is an audit event (README, Back office)."""

import pytest

from auditlog.models import AuditEvent
from auditlog.tests.conftest import STAFF_PASSWORD

NEW_PASSWORD = "another sturdy staff passphrase 9"


pytestmark = pytest.mark.usefixtures("roles")


def test_a_password_change_in_the_back_office_is_audited(client, sam):
    client.force_login(sam)
    response = client.post(
        "/admin/password_change/",
        {"old_password": STAFF_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    sam.refresh_from_db()
    assert sam.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="password.changed", actor=sam)
    assert (event.account_id, event.detail) == (sam.pk, {"via": "admin"})
    assert client.get("/admin/").status_code == 200  # Still signed in (the session's hash renewed).


def test_a_refused_password_change_in_the_back_office_records_no_change(client, sam):
    client.force_login(sam)
    wrong = {"old_password": "a guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    response = client.post("/admin/password_change/", wrong)
    assert response.status_code == 200 and "Your old password was entered incorrectly" in response.content.decode()
    assert not AuditEvent.objects.filter(action="password.changed").exists()

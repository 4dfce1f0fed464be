"""The back office's password change page (/admin/password_change/) asks for the current
password, so it is throttled as the console's password change is: LOGIN_RATE_PER_ACCOUNT tries,
counted in the same bucket. Found by a review: it was not throttled at all, an unlimited
password oracle for whoever held a staff session (a stolen cookie, an unlocked desk), though the
admin's login had been throttled "as the console's is" after an earlier review."""

import pytest

from auditlog.tests.conftest import STAFF_PASSWORD

NEW_PASSWORD = "another sturdy staff passphrase 9"


pytestmark = pytest.mark.usefixtures("roles")


def _form(old_password: str) -> dict[str, str]:
    return {"old_password": old_password, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}


def test_the_back_office_password_change_is_throttled_as_the_consoles_is(client, sam, settings):
    settings.LOGIN_RATE_PER_ACCOUNT = "5/m"
    client.force_login(sam)
    statuses = [client.post("/admin/password_change/", _form(f"guess {guess}")).status_code for guess in range(20)]
    right = client.post("/admin/password_change/", _form(STAFF_PASSWORD))
    assert statuses == [200] * 5 + [429] * 15
    assert right.status_code == 429  # Over the limit the form is not even checked.
    sam.refresh_from_db()
    assert sam.check_password(STAFF_PASSWORD)


def test_the_console_and_the_back_office_count_in_one_bucket(client, sam, settings):
    settings.LOGIN_RATE_PER_ACCOUNT = "5/m"
    client.force_login(sam)
    for guess in range(3):
        assert client.post("/account/password/", _form(f"guess {guess}")).status_code == 200
    statuses = [client.post("/admin/password_change/", _form(f"guess {guess}")).status_code for guess in range(3)]
    assert statuses == [200, 200, 429]
    assert client.post("/account/password/", _form(STAFF_PASSWORD)).status_code == 429


def test_within_the_limit_a_right_password_changes_it(client, sam, settings):
    settings.LOGIN_RATE_PER_ACCOUNT = "5/m"
    client.force_login(sam)
    assert client.post("/admin/password_change/", _form("a guess")).status_code == 200
    assert client.post("/admin/password_change/", _form(STAFF_PASSWORD)).status_code == 302
    sam.refresh_from_db()
    assert sam.check_password(NEW_PASSWORD)

"""Console login: throttled per IP and per account, and silent about which emails exist."""

import contextlib

import pytest
import time_machine
from django.db import connection
from django.test import override_settings

from accounts.actions import EmailTaken, create_account
from accounts.models import User
from auditlog.models import AuditEvent
from conftest import PASSWORD

GENERIC = "That email and password do not match an account."


def _login(client, email, password, ip="203.0.113.7"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_alice_signs_in(client, alice):
    response = _login(client, "ALICE@example.org", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert AuditEvent.objects.filter(action="login.succeeded", account_id=alice.pk).count() == 1


def test_a_wrong_password_and_an_unknown_email_read_the_same(client, alice):
    wrong = _login(client, "alice@example.org", "not her password")
    unknown = _login(client, "nobody@example.org", "not her password")
    assert wrong.status_code == unknown.status_code == 200
    assert GENERIC in wrong.content.decode()
    assert GENERIC in unknown.content.decode()
    assert AuditEvent.objects.filter(action="login.failed", account_id=alice.pk).count() == 1


@override_settings(LOGIN_RATE_PER_ACCOUNT="3/m", LOGIN_RATE_PER_IP="100/m")
def test_throttling_per_account_kicks_in_and_lifts(client, alice):
    with time_machine.travel("2026-11-24 10:00:05Z", tick=False):
        for n in range(3):
            # Each from another address: the per-account limit holds regardless of IP.
            assert _login(client, "alice@example.org", "guess", ip=f"198.51.100.{n}").status_code == 200
        throttled = _login(client, "alice@example.org", PASSWORD, ip="198.51.100.9")
        # Even the right password is refused while throttled, and the page says why.
        assert throttled.status_code == 429
        assert "Too many attempts" in throttled.content.decode()
        assert "_auth_user_id" not in client.session
    with time_machine.travel("2026-11-24 10:01:10Z", tick=False):
        assert _login(client, "alice@example.org", PASSWORD).status_code == 302


@override_settings(LOGIN_RATE_PER_ACCOUNT="100/m", LOGIN_RATE_PER_IP="3/m")
def test_throttling_per_ip_kicks_in_and_lifts(client, alice):
    with time_machine.travel("2026-11-24 10:00:05Z", tick=False):
        for n in range(3):
            _login(client, f"user{n}@example.org", "guess", ip="192.0.2.50")
        assert _login(client, "alice@example.org", PASSWORD, ip="192.0.2.50").status_code == 429
        assert _login(client, "alice@example.org", PASSWORD, ip="192.0.2.51").status_code == 302
    client.logout()
    with time_machine.travel("2026-11-24 10:01:10Z", tick=False):
        assert _login(client, "alice@example.org", PASSWORD, ip="192.0.2.50").status_code == 302


def test_a_nul_in_the_login_email_is_a_400_not_a_500(client, alice):
    """Refused before the login (drake.middleware.NulCharacterMiddleware: any console form)."""
    client.raise_request_exception = False
    response = client.post("/login/", {"username": "alice\x00@example.org", "password": "wrong"})
    assert (response.status_code, response.content) == (400, b"The form holds a NUL character.")


def test_a_nul_in_the_login_email_while_throttled_is_not_a_500(client, alice, settings):
    settings.LOGIN_RATE_PER_IP = "1/m"
    client.raise_request_exception = False
    client.post("/login/", {"username": "alice@example.org", "password": "wrong"})
    response = client.post("/login/", {"username": "mallory@example\x00.org", "password": "wrong"})
    assert response.status_code == 400
    assert client.post("/login/", {"username": "mallory@example.org", "password": "wrong"}).status_code == 429


def test_a_throttled_login_does_not_check_the_password(client, alice, settings):
    from django.contrib.auth.signals import user_login_failed

    settings.LOGIN_RATE_PER_ACCOUNT = "1/m"
    client.post("/login/", {"username": "alice@example.org", "password": "guess one"})
    checked = []

    def count(**kwargs):
        checked.append(kwargs)

    user_login_failed.connect(count)
    try:
        response = client.post("/login/", {"username": "alice@example.org", "password": "guess two"})
    finally:
        user_login_failed.disconnect(count)
    assert response.status_code == 429
    assert checked == []


def _login_via(client, email, client_ip, peer="127.0.0.1"):
    """A sign-in through the TLS proxy docs/deploy.md puts in front (FORWARDED_ALLOW_IPS,
    127.0.0.1 by default): the request comes from the proxy; the client is in X-Forwarded-For."""
    return client.post(
        "/login/", {"username": email, "password": "guess"}, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=client_ip
    )


def test_behind_the_proxy_each_client_has_its_own_login_budget(client, alice, settings):
    settings.LOGIN_RATE_PER_IP = "3/m"
    for n in range(4):  # One client stuffing credentials...
        _login_via(client, f"user{n}@example.org", "192.0.2.50")
    assert _login_via(client, "user9@example.org", "192.0.2.50").status_code == 429
    # ...does not lock everybody else out of the console.
    assert _login_via(client, "alice@example.org", "198.51.100.7").status_code == 200
    assert AuditEvent.objects.filter(action="login.throttled", actor_ip="192.0.2.50").exists()


def test_a_client_cannot_pick_its_address_with_x_forwarded_for(client, alice, settings):
    settings.LOGIN_RATE_PER_IP = "3/m"
    # Straight from the internet, not through the proxy: its header is not believed...
    for n in range(4):
        _login_via(client, f"user{n}@example.org", f"192.0.2.{n}", peer="203.0.113.9")
    assert _login_via(client, "user9@example.org", "192.0.2.99", peer="203.0.113.9").status_code == 429
    # ...nor, through the proxy, what it put before the proxy's own entry (the right-most one).
    for n in range(4):
        _login_via(client, f"user{n}@example.org", f"10.0.0.{n}, 192.0.2.60")
    assert _login_via(client, "user9@example.org", "10.0.0.99, 192.0.2.60").status_code == 429


def test_with_every_proxy_trusted_a_client_still_cannot_pick_its_address(client, alice, settings):
    """FORWARDED_ALLOW_IPS=* (README: "or `*`"), as behind a load balancer of unknown address:
    the peer is believed, so the client is the right-most entry, the one the proxy appended,
    not an address the client itself put before it."""
    settings.FORWARDED_ALLOW_IPS = ["*"]
    settings.LOGIN_RATE_PER_IP = "3/m"
    for n in range(4):
        _login_via(client, f"user{n}@example.org", f"10.0.0.{n}, 192.0.2.61", peer="172.16.0.2")
    assert _login_via(client, "user9@example.org", "10.0.0.99, 192.0.2.61", peer="172.16.0.2").status_code == 429
    assert not AuditEvent.objects.filter(actor_ip__startswith="10.0.0.").exists()


def test_behind_a_proxy_that_writes_ports_each_client_has_its_own_login_budget(client, alice, settings):
    """Some proxies (Azure Application Gateway, for one) append the client's address with its
    port: "192.0.2.50:51234", "[2001:db8::5]:51234". It is still the client's address."""
    settings.LOGIN_RATE_PER_IP = "3/m"
    for n in range(4):
        _login_via(client, f"user{n}@example.org", f"192.0.2.50:{40000 + n}")
    assert _login_via(client, "user9@example.org", "192.0.2.50:41000").status_code == 429
    assert _login_via(client, "alice@example.org", "[2001:db8::5]:41000").status_code == 200
    assert AuditEvent.objects.filter(action="login.throttled", actor_ip="192.0.2.50").exists()


@override_settings(LOGIN_RATE_PER_ACCOUNT="3/m", LOGIN_RATE_PER_IP="100/m")
def test_the_per_account_throttle_holds_for_every_spelling_the_database_matches(client, alice):
    """Keyed on the typed address's lower(), `alıce@` (a dotless i, which PostgreSQL's UPPER
    folds into I, as `email__iexact` compares) was a bucket of its own for alice's account:
    each i or s of an address doubled the guesses. Found by a security review."""
    with time_machine.travel("2026-11-24 10:00:05Z", tick=False):
        for n in range(3):
            _login(client, "alice@example.org", "guess", ip=f"198.51.100.{n}")
        assert _login(client, "alice@example.org", PASSWORD, ip="198.51.100.8").status_code == 429
        assert _login(client, "ALICE@EXAMPLE.ORG", PASSWORD, ip="198.51.100.9").status_code == 429
        # SQLite's iexact folds ASCII only: there alıce@ is no account at all (a 200, refused).
        folded = 429 if connection.vendor == "postgresql" else 200
        for variant in ("al\u0131ce@example.org", "al\u0131ce@example.org "):
            assert _login(client, variant, PASSWORD, ip="198.51.100.9").status_code == folded, variant
        assert "_auth_user_id" not in client.session


@override_settings(LOGIN_RATE_PER_ACCOUNT="3/m", LOGIN_RATE_PER_IP="100/m", ADMIN_REQUIRE_2FA=False)
def test_the_back_office_login_counts_in_the_same_buckets_and_is_audited(client, alice, django_user_model):
    """/admin/login/ checks passwords too, and was neither throttled nor audited: staff passwords
    could be guessed there as fast as one could post, unseen. Found by a security review."""
    staff = django_user_model.objects.create_user("staffer@3drake.test", "a sturdy staff passphrase", is_staff=True)
    with time_machine.travel("2026-11-24 10:00:05Z", tick=False):
        for n in range(2):
            form = {"username": staff.email, "password": f"guess{n}"}
            assert client.post("/admin/login/", form, REMOTE_ADDR="192.0.2.7").status_code == 200
        assert _login(client, staff.email, "guess", ip="192.0.2.8").status_code == 200  # The console's: same bucket.
        right = {"username": staff.email, "password": "a sturdy staff passphrase"}
        throttled = client.post("/admin/login/?next=/admin/", right, REMOTE_ADDR="192.0.2.9")
        assert throttled.status_code == 429 and "Too many attempts" in throttled.content.decode()
        assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.filter(action="login.failed", account_id=staff.pk)
    assert sorted(e.detail.get("via", "console") for e in failed) == ["admin", "admin", "console"]
    assert AuditEvent.objects.get(action="login.throttled").detail["via"] == "admin"
    with time_machine.travel("2026-11-24 10:01:10Z", tick=False):
        signed_in = client.post("/admin/login/?next=/admin/", right, REMOTE_ADDR="192.0.2.9")
    assert signed_in.status_code == 302
    assert AuditEvent.objects.get(action="login.succeeded", account_id=staff.pk).detail == {"via": "admin"}


@pytest.mark.parametrize("spelling", ["al\u0131ce@example.org", "ALICE@EXAMPLE.ORG"])
def test_no_two_accounts_answer_to_one_typed_address(client, alice, spelling):
    """Unique on lower(email), looked up by UPPER (`email__iexact`): "alıce@" (a dotless i)
    lower-cases to itself, so it could be a second account (createaccount, the admin, an email
    change racing a check), yet UPPER folds it into ALICE@, and then both addresses' logins
    found two accounts: a 500 for alice. Unique on UPPER too, the spellings one lookup matches
    are one account (SQLite folds ASCII only: there alıce@ is an address of its own)."""
    with contextlib.suppress(EmailTaken):
        create_account(spelling, "a sturdy second passphrase")
    for typed in ("alice@example.org", spelling):
        assert User.objects.filter(email__iexact=typed).count() <= 1, typed
        assert _login(client, typed, PASSWORD).status_code in (200, 302), typed
        client.logout()
    if connection.vendor == "postgresql":
        assert User.objects.count() == 1

"""Sign-up confirms by email and never reveals whether an address has an account."""

import re

import time_machine
from django.core import mail
from django.test import Client, override_settings

from accounts.models import User
from auditlog.models import AuditEvent
from conftest import PASSWORD


def _signup(client, email, password=PASSWORD):
    return client.post("/signup/", {"email": email, "name": "Dana", "password": password})


def test_a_new_user_signs_up_and_confirms(client, db):
    response = _signup(client, "dana@example.org")
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    dana = User.objects.get(email="dana@example.org")
    assert not dana.is_active
    assert dana.plan.slug == "free"
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/activate/\S+/)", mail.outbox[0].body).group(1)

    page = client.get(link)  # Opening the link changes nothing: it asks for the password.
    assert page.status_code == 200 and "dana@example.org" in page.content.decode()
    dana.refresh_from_db()
    assert not dana.is_active
    response = client.post(link, {"password": PASSWORD})
    assert response.status_code == 302
    dana.refresh_from_db()
    assert dana.is_active
    assert client.get("/dashboard/").status_code == 200
    # The link works once: after login the token no longer validates.
    client.logout()
    assert client.get(link).status_code == 400
    assert client.post(link, {"password": PASSWORD}).status_code == 400


def test_the_activation_link_alone_activates_nothing(client, db):
    """A click on the link activated the account and signed in. Someone who signed up another
    person's address, with a password of their own, had the owner's click turn on an account
    whose password they knew (a pre-account hijack); and mail scanners that open every link
    activated accounts no one confirmed. The link now asks for the sign-up's password; the
    owner who never chose one sets their own by a reset, which shuts the squatter out."""
    squatters = "the squatter's own passphrase"
    _signup(client, "victim@example.org", password=squatters)
    link = re.search(r"http://testserver(/activate/\S+/)", mail.outbox[-1].body).group(1)
    assert "enter the password you chose" in mail.outbox[-1].body

    victim = Client()  # The owner of the mailbox, who never signed up.
    for _ in range(2):
        assert victim.get(link).status_code == 200  # Their click, and their mail scanner's.
    refused = victim.post(link, {"password": "a guess at what was chosen"})
    assert refused.status_code == 200
    assert "not the password this account was signed up with" in refused.content.decode()
    assert not User.objects.get(email="victim@example.org").is_active
    assert "_auth_user_id" not in victim.session
    assert AuditEvent.objects.filter(action="login.failed", detail__via="activation").count() == 1

    # What the page offers them instead: a reset, to a password of their own.
    victim.post("/password-reset/", {"email": "victim@example.org"})
    reset = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[-1].body).group(1)
    form = victim.get(reset, follow=True)
    own = "the owner's brand new passphrase"
    assert victim.post(form.redirect_chain[-1][0], {"new_password1": own, "new_password2": own}).status_code == 302
    assert User.objects.get(email="victim@example.org").is_active
    assert client.post("/login/", {"username": "victim@example.org", "password": squatters}).status_code == 200
    assert client.post(link, {"password": squatters}).status_code == 400  # The old link is void.


@override_settings(LOGIN_RATE_PER_ACCOUNT="3/m", LOGIN_RATE_PER_IP="100/m")
def test_the_activation_page_counts_password_guesses_with_the_login(client, db):
    """The page checks a password, so it is a password oracle: its guesses count in the login's
    per-account bucket, and over the limit even the right password is not checked."""
    _signup(client, "dana@example.org")
    link = re.search(r"http://testserver(/activate/\S+/)", mail.outbox[-1].body).group(1)
    with time_machine.travel("2026-11-24 10:00:05Z", tick=False):
        for n in range(2):
            assert client.post(link, {"password": f"guess {n}"}).status_code == 200
        client.post("/login/", {"username": "dana@example.org", "password": "guess 3"})  # Same bucket.
        throttled = client.post(link, {"password": PASSWORD})
        assert throttled.status_code == 429 and "Too many attempts" in throttled.content.decode()
        assert not User.objects.get(email="dana@example.org").is_active
        assert AuditEvent.objects.filter(action="login.throttled", detail__via="activation").exists()
    with time_machine.travel("2026-11-24 10:01:05Z", tick=False):
        assert client.post(link, {"password": PASSWORD}).status_code == 302


def test_signing_up_with_an_existing_email_leaks_nothing(client, alice):
    new = _signup(client, "newcomer@example.org")
    existing = _signup(client, "Alice@Example.org")
    strip = lambda r: r.content.decode().replace("newcomer@example.org", "X").replace("Alice@Example.org", "X")  # noqa: E731
    assert new.status_code == existing.status_code == 200
    assert strip(new) == strip(existing)
    assert User.objects.filter(email__iexact="alice@example.org").count() == 1
    # Alice herself is told, by email, that someone tried.
    assert mail.outbox[-1].to == ["alice@example.org"]
    assert "already has one" in mail.outbox[-1].body


def test_a_weak_password_is_refused_in_place(client, db):
    response = _signup(client, "dana@example.org", password="12345678")
    assert response.status_code == 200
    assert 'id="id_password_error"' in response.content.decode()
    assert not User.objects.exists()


def test_password_reset_says_the_same_for_unknown_emails(client, alice):
    known = client.post("/password-reset/", {"email": "alice@example.org"})
    unknown = client.post("/password-reset/", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert len(mail.outbox) == 1


def test_an_address_too_long_to_keep_is_refused_in_place(client, db):
    # Valid as an address (a 64-character local part, 63-character labels) but 260 characters:
    # more than the account's email column holds (254), so it must be a form error, not a 500.
    email = "a" * 64 + "@" + ("b" * 63 + ".") * 3 + "com"
    response = _signup(client, email)
    assert response.status_code == 200
    assert 'id="id_email_error"' in response.content.decode()
    assert not User.objects.exists()


def test_an_address_signed_up_but_never_activated_is_taken_by_its_mailbox_owner(client, db):
    """Signed up (by its owner who then missed the link, or by someone squatting the address)
    and never activated: after the link's two hours a new sign-up only mailed "already has
    one", the reset form mailed nothing to an inactive account and the login refused it, so
    the address could never become anyone's account. A reset now works for it: the link goes to
    the mailbox, the password is the owner's own, and setting it activates the account. Found
    by a security review."""
    with time_machine.travel("2026-11-24 10:00:00Z", tick=False):
        _signup(client, "victim@example.org", password="the squatter's own passphrase")
    mail.outbox.clear()
    with time_machine.travel("2026-11-24 13:00:00Z", tick=False):
        _signup(client, "victim@example.org")
        assert "It was never activated" in mail.outbox[-1].body
        client.post("/password-reset/", {"email": "Victim@example.org"})
        link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[-1].body).group(1)
        form = client.get(link, follow=True)  # Django moves the token out of the URL first.
        new = "the owner's brand new passphrase"
        done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
        assert done.status_code == 302
        victim = User.objects.get(email="victim@example.org")
        assert victim.is_active
        assert client.post("/login/", {"username": "victim@example.org", "password": new}).status_code == 302
        client.logout()
        squatter = client.post(
            "/login/", {"username": "victim@example.org", "password": "the squatter's own passphrase"}
        )
        assert squatter.status_code == 200


def test_a_password_reset_mail_goes_after_the_answer(rf, alice):
    """The page reads the same for every address, but the mail went inside the request, only
    for a known one: with a real mail server's few hundred milliseconds, the time to answer
    told which addresses have an account. Found by a security review. The mail now goes when
    the server closes the response (as the test client and gunicorn do, after the body)."""
    from django.contrib.sessions.middleware import SessionMiddleware

    from accounts.views import PasswordResetView

    def answer(email):
        request = rf.post("/password-reset/", {"email": email})
        SessionMiddleware(lambda r: None).process_request(request)
        request._dont_enforce_csrf_checks = True
        return PasswordResetView.as_view()(request)

    unknown, known = answer("nobody@example.org"), answer("alice@example.org")
    assert unknown.status_code == known.status_code == 302
    assert mail.outbox == []  # Both answered, nothing sent yet.
    unknown.close()
    known.close()
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]


def test_a_new_password_set_by_a_reset_link_is_confirmed_on_the_sign_in_page(client, alice):
    """The reset's last step went to the sign-in page with nothing on it: the person could not
    tell whether the new password was set, or the link had failed."""
    client.post("/password-reset/", {"email": "alice@example.org"})
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[-1].body).group(1)
    form = client.get(link, follow=True)
    new = "alice's brand new passphrase"
    page = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True)
    assert page.redirect_chain[-1][0] == "/login/"
    assert "Your new password is set. Sign in with it." in page.content.decode()


def test_the_page_after_sign_up_mentions_the_terminal_only_where_mail_goes_there(client, db, settings):
    """Every customer of a real deployment was told "Running locally? The message is printed
    in the terminal where make run runs": a developer's note, and a wrong one where mail is sent."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # Mail goes out, as SMTP's does.
    assert "make run" not in _signup(client, "dana@example.org").content.decode()
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert "make run" in _signup(client, "erin@example.org").content.decode()


def _reset_link(client, email):
    client.post("/password-reset/", {"email": email})
    return re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[-1].body).group(1)


def test_a_password_reset_does_not_undo_a_deactivation_by_staff(client, alice):
    """Reactivating a never-activated account on a password reset also reactivated one that
    staff had deactivated (the admin's "active" box): its owner asked for a reset link, set a
    password, and was back in, API keys working again."""
    link = _reset_link(client, "alice@example.org")  # Asked for before staff stepped in.
    User.objects.filter(pk=alice.pk).update(is_active=False)
    mail.outbox.clear()
    client.post("/password-reset/", {"email": "alice@example.org"})
    assert mail.outbox == []  # As for Django's own reset form: nothing for a deactivated account.
    form = client.get(link, follow=True)
    new = "alice's brand new passphrase"
    client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    alice.refresh_from_db()
    assert not alice.is_active
    assert client.post("/login/", {"username": "alice@example.org", "password": new}).status_code == 200


def _mail_server_down(settings):
    from drake.testing.smtp import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # Nothing listens there.


def test_a_sign_up_while_the_mail_server_is_down_is_a_503_that_changed_nothing(client, alice, settings):
    """It was a 500, with the new account left behind, inactive and never mailed its link (a
    second try then mailed "it already has one"). Now the same 503 for a new and a known address."""
    _mail_server_down(settings)
    new, known = _signup(client, "dana@example.org"), _signup(client, "alice@example.org")
    assert new.status_code == known.status_code == 503
    assert new.content == known.content
    assert not User.objects.filter(email="dana@example.org").exists()


def test_the_consoles_own_mail_waits_a_bounded_time_for_its_server():
    """No EMAIL_TIMEOUT: a mail server that took the connection and then said nothing held the
    sign-up (the email change, the reset's mail) until gunicorn killed the worker."""
    from django.conf import settings
    from django.core.mail import get_connection

    connection = get_connection("django.core.mail.backends.smtp.EmailBackend")
    assert connection.timeout is not None and connection.timeout < 30  # gunicorn's timeout.
    assert connection.timeout == settings.EMAIL_TIMEOUT

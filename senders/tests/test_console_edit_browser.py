"""alice's SMTP server moved, in a real browser (Playwright driving Debian's Chromium).

Her sender is verified on the old server (STARTTLS); the new one speaks implicit TLS on another
port. She changes the port and the security on the sender's page, sees the saved values and that
the sender needs verifying again, verifies it, and the new server accepts her login: same
sender, same id. No page may log a console error or a CSP violation.
"""

from __future__ import annotations

import pytest
import trustme

from conftest import PASSWORD
from drake.testing.browser import shot, sign_in, watch
from drake.testing.smtp import SmtpTestServer
from senders import actions
from senders.models import Sender

USER, SMTP_PASSWORD = "alice@example.org", "alices-smtp-password"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield watch(context.new_page())
    context.close()


@pytest.fixture
def servers(settings, tmp_path):
    """The old server (STARTTLS) and the new one (implicit TLS), under one test CA."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    old, new = (SmtpTestServer(security=s, username=USER, password=SMTP_PASSWORD, ca=ca) for s in ("starttls", "tls"))
    old.start()
    new.start()
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    settings.SMTP_CA_FILE = str(ca_file)
    yield old, new
    old.stop()
    new.stop()


def test_alice_moves_her_sender_to_a_new_port_and_security(page, live_server, alice, servers):
    old, new = servers
    sender = actions.create_sender(
        alice,
        {
            "provider": "smtp",
            "from_email": USER,
            "host": "127.0.0.1",
            "port": old.port,
            "security": "starttls",
            "password": SMTP_PASSWORD,
        },
    )
    assert actions.verify_sender(sender, actor=alice) is None
    base = live_server.url

    sign_in(page, base, alice.email, PASSWORD)

    page.goto(f"{base}/senders/{sender.public_id}/")
    assert page.inner_text("h1 .badge") == "verified"
    assert page.input_value("#id_port") == str(old.port)
    assert page.input_value("#id_password") == ""  # The stored password is never put back.

    page.fill("#id_port", str(new.port))
    page.select_option("#id_security", "tls")
    page.click("button:has-text('Save settings')")

    assert page.url == f"{base}/senders/{sender.public_id}/"
    assert "Settings saved. Verify the sender again" in page.inner_text("body")
    assert page.inner_text("h1 .badge") == "not verified"
    assert f"127.0.0.1:{new.port} (tls)" in page.inner_text("dl.facts")
    assert page.input_value("#id_port") == str(new.port)
    assert page.input_value("#id_security") == "tls"
    assert page.input_value("#id_password") == ""
    shot(page, "sender-settings-changed")

    page.click("button:has-text('Verify connection')")
    assert "Verified: the provider accepted" in page.inner_text("body")
    assert page.inner_text("h1 .badge") == "verified"
    assert (new.logins, old.logins) == (1, 1)  # The new server now; the old one only for the first.

    moved = Sender.objects.get(pk=sender.pk)
    assert (moved.public_id, moved.port, moved.security) == (sender.public_id, new.port, "tls")
    assert page.problems == [], page.problems

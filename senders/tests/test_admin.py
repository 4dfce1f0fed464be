"""The admin shows sender metadata and never the secret, not even as ciphertext."""

from django.contrib.auth import get_user_model

from senders import actions

SECRET = "admin-must-never-see-this"


def test_admin_pages_contain_no_secret(client, alice):
    sender = actions.create_sender(alice, {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})
    root = get_user_model().objects.create_superuser("root@3drake.test", "a sturdy passphrase")
    client.force_login(root)
    for path in [
        "/admin/senders/sender/",
        f"/admin/senders/sender/{sender.pk}/change/",
        "/admin/senders/sender/?q=alice",
    ]:
        page = client.get(path).content.decode()
        assert sender.public_id in page
        assert SECRET not in page
        assert sender.password_encrypted not in page
        assert "password_encrypted" not in page


def _support(django_user_model, email="sam@3drake.test"):
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("setup_roles", stdout=open("/dev/null", "w"))  # noqa: SIM115
    user = django_user_model.objects.create_user(email, "a sturdy staff passphrase", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    return user


def _act(client, action, sender, reason="Phishing reported by recipients"):
    return client.post(
        "/admin/senders/sender/", {"action": action, "_selected_action": [sender.pk], "apply": "1", "reason": reason}
    )


def test_support_disables_and_enables_a_sender_with_a_reason(client, alice, django_user_model, settings):
    from auditlog.models import AuditEvent
    from senders.models import Sender

    settings.ADMIN_REQUIRE_2FA = False
    sam = _support(django_user_model)
    sender = actions.create_sender(alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "pw"})
    client.force_login(sam)
    # The action asks for the reason first, and says what the customer will see.
    form = client.post("/admin/senders/sender/", {"action": "disable", "_selected_action": [sender.pk]})
    assert form.status_code == 200
    assert "Shown to the customer" in form.content.decode()
    assert not Sender.objects.get(pk=sender.pk).is_disabled

    assert _act(client, "disable", sender).status_code == 302
    disabled = Sender.objects.get(pk=sender.pk)
    assert (disabled.is_disabled, disabled.disabled_reason) == (True, "Phishing reported by recipients")
    event = AuditEvent.objects.get(action="sender.disabled")
    assert (event.actor, event.detail["reason"]) == (sam, "Phishing reported by recipients")

    assert _act(client, "enable", sender, reason="resolved with the customer").status_code == 302
    assert not Sender.objects.get(pk=sender.pk).is_disabled
    assert AuditEvent.objects.get(action="sender.enabled").detail["reason"] == "resolved with the customer"


def test_staff_without_the_permission_cannot_disable(client, alice, django_user_model, settings):
    from django.contrib.auth.models import Permission

    from senders.models import Sender

    settings.ADMIN_REQUIRE_2FA = False
    viewer = django_user_model.objects.create_user("vic@3drake.test", "a sturdy staff passphrase", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_sender"), Permission.objects.get(codename="pause_sender")
    )
    sender = actions.create_sender(alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "pw"})
    client.force_login(viewer)
    page = client.get("/admin/senders/sender/").content.decode()
    assert 'value="pause"' in page and 'value="disable"' not in page
    _act(client, "disable", sender)
    assert not Sender.objects.get(pk=sender.pk).is_disabled

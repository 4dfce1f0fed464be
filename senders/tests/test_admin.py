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

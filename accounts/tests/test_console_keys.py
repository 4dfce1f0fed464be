"""The API keys page: create (shown once), list and revoke; another account's key is a 404."""

from accounts.models import ApiKey
from auditlog.models import AuditEvent


def test_alice_creates_a_key_and_sees_it_once(client, alice):
    client.force_login(alice)
    response = client.post("/keys/", {"name": "production"})
    assert response.status_code == 200
    key = ApiKey.objects.get(user=alice)
    page = response.content.decode()
    raw = page.split('id="new-key" class="mono" value="')[1].split('"')[0]
    assert raw.startswith(key.display_prefix + "_")
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    # The key works on the API...
    assert client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    # ...and is never shown again.
    assert raw not in client.get("/keys/").content.decode()
    assert AuditEvent.objects.filter(action="api_key.created", account_id=alice.pk).count() == 1


def test_alice_revokes_a_key_after_confirming(client, alice, alice_key):
    client.force_login(alice)
    key = ApiKey.objects.get(user=alice)
    confirm = client.get(f"/keys/{key.prefix}/revoke/")
    assert confirm.status_code == 200
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert client.post(f"/keys/{key.prefix}/revoke/").status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {alice_key}").status_code == 401


def test_charlie_cannot_see_or_revoke_alices_key(client, alice, alice_key, charlie):
    key = ApiKey.objects.get(user=alice)
    client.force_login(charlie)
    assert client.get(f"/keys/{key.prefix}/revoke/").status_code == 404
    assert client.post(f"/keys/{key.prefix}/revoke/").status_code == 404
    assert key.prefix not in client.get("/keys/").content.decode()
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_the_console_requires_login(client, db):
    for path in ["/dashboard/", "/keys/", "/account/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")

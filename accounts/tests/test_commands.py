"""Operator commands: createaccount and apikey create|list|revoke."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, User


def run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createaccount_creates_an_active_account(db):
    out = run("createaccount", "--email", "erin@example.org", "--password", "a sturdy passphrase", "--name", "Erin")
    erin = User.objects.get(email="erin@example.org")
    assert erin.is_active and not erin.is_staff and erin.check_password("a sturdy passphrase")
    assert "Created account erin@example.org" in out


def test_createaccount_makes_staff(db):
    run("createaccount", "--email", "sam@example.org", "--password", "a sturdy passphrase", "--staff")
    assert User.objects.get(email="sam@example.org").is_staff


def test_createaccount_refuses_a_duplicate_and_a_weak_password(alice):
    with pytest.raises(CommandError, match="exists already"):
        run("createaccount", "--email", "alice@example.org", "--password", "a sturdy passphrase")
    with pytest.raises(CommandError):
        run("createaccount", "--email", "new@example.org", "--password", "123")


def test_apikey_create_prints_the_key_on_its_own_last_line(alice, client):
    out = run("apikey", "create", "--email", "alice@example.org", "--name", "ci")
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("drk_") and " " not in raw
    assert client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_apikey_list_shows_metadata_only(alice, alice_key):
    out = run("apikey", "list", "--email", "alice@example.org")
    key = ApiKey.objects.get(user=alice)
    assert key.display_prefix in out
    assert alice_key not in out
    assert key.secret_hash not in out


def test_apikey_revoke_by_prefix(alice, alice_key, client):
    key = ApiKey.objects.get(user=alice)
    out = run("apikey", "revoke", "--prefix", key.display_prefix)
    assert "Revoked" in out
    assert client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {alice_key}").status_code == 401
    assert "nothing changed" in run("apikey", "revoke", "--prefix", key.prefix)


def test_apikey_commands_explain_unknown_inputs(db):
    with pytest.raises(CommandError, match="No account"):
        run("apikey", "list", "--email", "nobody@example.org")
    with pytest.raises(CommandError, match="No key"):
        run("apikey", "revoke", "--prefix", "drk_XXXXXXXXXX")

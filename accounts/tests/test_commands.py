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


def test_apikey_revoke_takes_a_whole_leaked_key_and_never_echoes_its_secret(alice, alice_key, client):
    """Given the whole key, it answered "No key with the prefix <the whole secret>" (an API review)."""
    secret = alice_key.split("_", 2)[2]
    out = run("apikey", "revoke", "--prefix", alice_key)
    assert "Revoked" in out and secret not in out
    assert client.get("/v1/account", HTTP_AUTHORIZATION=f"Bearer {alice_key}").status_code == 401
    unknown = "drk_XXXXXXXXXX_" + "s" * 49
    with pytest.raises(CommandError, match="No key") as refused:
        run("apikey", "revoke", "--prefix", unknown)
    assert "sss" not in str(refused.value)


def test_apikey_commands_explain_unknown_inputs(db):
    with pytest.raises(CommandError, match="No account"):
        run("apikey", "list", "--email", "nobody@example.org")
    with pytest.raises(CommandError, match="No key"):
        run("apikey", "revoke", "--prefix", "drk_XXXXXXXXXX")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--email", "not an email"], "valid email"),
        (["--email", ""], "blank"),
        (["--email", "long@example.org", "--name", "n" * 151], "at most 150"),
    ],
)
def test_createaccount_checks_its_arguments_as_the_model_does(db, args, says):
    """A bad address was accepted, an over-long name a DataError traceback (a review)."""
    with pytest.raises(CommandError, match=says):
        call_command("createaccount", "--password", "a sturdy passphrase 1", *args)
    assert not User.objects.exists()


def test_apikey_create_refuses_an_overlong_name(alice):
    with pytest.raises(CommandError, match="at most 100"):
        call_command("apikey", "create", "--email", alice.email, "--name", "k" * 101)
    assert not ApiKey.objects.filter(user=alice).exists()


def test_export_account_to_a_path_it_cannot_write_says_so_and_records_nothing(alice, tmp_path):
    from auditlog.models import AuditEvent

    before = AuditEvent.objects.for_account(alice).count()
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_account", "--email", alice.email, "--output", str(tmp_path / "missing" / "out.json"))
    assert AuditEvent.objects.for_account(alice).count() == before


def test_export_account_writes_a_file_only_its_owner_can_read(alice, tmp_path):
    """The export is everything we hold about a person; --output left it readable by every
    user of the machine (0644 under the usual umask), an existing file keeping its mode too.
    Found by a privacy review helper."""
    import json
    import os
    import stat

    fresh, existing = tmp_path / "fresh.json", tmp_path / "existing.json"
    existing.write_text("old")
    existing.chmod(0o644)
    for path in (fresh, existing):
        run("export_account", "--email", alice.email, "--output", str(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(path.read_text())["account"]["email"] == alice.email


def test_export_account_leaves_the_mode_of_what_is_not_a_regular_file(alice, tmp_path):
    """It made its --output 0600 whatever it was: run as root, `--output /dev/null` (or
    /dev/stdout on a terminal) left /dev/null writable by root alone, and every other service of
    the machine failing to write to it. Found by an operator review."""
    import json
    import os
    import stat
    import threading

    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    run("export_account", "--email", alice.email, "--output", str(fifo))
    reader.join(timeout=10)
    assert json.loads(received[0])["account"]["email"] == alice.email
    assert stat.S_IMODE(os.stat(fifo).st_mode) == 0o666


def test_export_account_that_cannot_finish_its_file_says_so_and_leaves_no_part_of_it(alice, tmp_path):
    """A disk that fills up mid-export was a traceback, and the partial JSON stayed where the
    operator expected the export. Found by an operator review."""
    import resource

    path = tmp_path / "export.json"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))  # Past 100 bytes a write fails (EFBIG).
    try:
        with pytest.raises(CommandError, match=f"Cannot write {path}: File too large"):
            call_command("export_account", "--email", alice.email, "--output", str(path), stdout=StringIO())
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert not path.exists()

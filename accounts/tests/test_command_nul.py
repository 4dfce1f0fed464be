"""An argument carrying a NUL (a script's call_command, a value read
from a file or a form) ended every account command in a psycopg DataError traceback ("PostgreSQL
text fields cannot contain NUL (0x00) bytes") instead of a one-line error; createaccount's own
field checks (email, name) let a NUL in the name through. On SQLite the same input is stored."""

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    "args",
    [
        ["createaccount", "--email", "erin@example.org", "--password", "a sturdy passphrase", "--name", "Er\x00in"],
        ["apikey", "list", "--email", "alice@exa\x00mple.org"],
        ["apikey", "create", "--email", "alice@example.org", "--name", "ci\x00"],
        ["apikey", "revoke", "--prefix", "drk_\x00abcdefgh"],
        ["export_account", "--email", "alice@exa\x00mple.org"],
        ["delete_account", "--email", "alice@exa\x00mple.org", "--yes"],
    ],
    ids=["createaccount-name", "apikey-list", "apikey-create", "apikey-revoke", "export_account", "delete_account"],
)
def test_a_nul_in_an_argument_is_a_one_line_error(alice, args):
    from io import StringIO

    try:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    except CommandError:
        return  # A clear message and exit status 1.
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{args[0]} crashed with {type(exc).__name__}: {exc}")
    from accounts.models import ApiKey, User

    assert not User.objects.filter(name__contains="\x00").exists()
    assert not ApiKey.objects.filter(name__contains="\x00").exists()

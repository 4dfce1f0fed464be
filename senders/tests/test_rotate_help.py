"""`rotate_encryption_keys --help` said it re-encrypts "sender
secrets, outbox content" and that "afterwards the other keys can be removed". It also
re-encrypts the two-factor authenticators' secrets (README: "sender passwords, authenticator
secrets"), and an old key may be removed only when it exited 0 (README: "not while it exits 1:
some value decrypted with no key"). An operator reading --help alone drops a key too early."""

from django.core.management import load_command_class


def test_the_help_names_every_secret_it_rotates_and_when_an_old_key_may_go():
    parser = load_command_class("senders", "rotate_encryption_keys").create_parser(
        "manage.py", "rotate_encryption_keys"
    )
    text = " ".join((parser.description or "").split()).lower()  # The command's own help, not argparse's.
    assert "authenticator" in text or "two-factor" in text, text
    assert "exit" in text or "unreadable" in text or "decrypt" in text, text

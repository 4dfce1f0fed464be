"""gunicorn's access log carries no address of an email change.

Privacy policy 4 (data minimization), 2.3 (usage metadata, not addresses) and gunicorn.conf.py's
own promise: "Access log without the query string: keys or addresses never land in it". The
email-change link the console mails is /account/email/<token>/; the token was made by
django.core.signing.dumps: base64 of plain JSON {"u": id, "f": old address, "e": new address},
signed but not encrypted, so following the link wrote both addresses, readable by anyone reading
the logs, to the access log (%(U)s) (found by a privacy review). The token is now encrypted.
"""

from __future__ import annotations

import os
import re
import time

import pytest
import requests
from cryptography.fernet import Fernet
from django.core import mail, signing

from conftest import PASSWORD
from drake.testing.processes import gunicorn
from drake.testing.worker import database_url

pytestmark = pytest.mark.django_db


def _production() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS"}}
    env.update(
        # DEBUG on only so that pages render without collectstatic's manifest; the access log
        # is gunicorn's, from gunicorn.conf.py, the same either way.
        DEBUG="true",
        SECRET_KEY="x" * 60,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url(),
        FORWARDED_ALLOW_IPS="127.0.0.1",
    )
    return env


def access_log_lines(path: str, prefix: str, tmp_path) -> list[str]:  # noqa: ANN001
    """GET `path` from a real gunicorn (the project's gunicorn.conf.py, its access log on
    stdout as deployed); the access log's lines of requests for paths starting with `prefix`
    ('%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms')."""
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(_production(), log_path, args=("--access-logfile", "-")) as port:
        requests.get(
            f"http://127.0.0.1:{port}{path}", headers={"X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=10
        )
        time.sleep(0.5)
    log = log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if line.startswith(f'127.0.0.1 "GET {prefix}')]
    assert lines, f"the request should be in the access log:\n{log}"
    return lines


def _decoded(line: str) -> str:
    """The line with every signing token in it decoded (what a log reader can do by hand)."""
    out = [line]
    for candidate in re.findall(r"[A-Za-z0-9_\-]{20,}", line):
        try:
            out.append(signing.b64_decode(candidate.encode()).decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001, S112  (not base64: skipped)
            continue
    return "\n".join(out)


def test_following_the_email_change_link_writes_no_address_to_the_access_log(client, alice, tmp_path):
    client.force_login(alice)
    client.post("/account/", {"new_email": "alice@new.example", "password": PASSWORD})
    path = re.search(r"http://testserver(/account/email/\S+/)", mail.outbox[-1].body).group(1)

    for line in access_log_lines(path, "/account/email/", tmp_path):
        readable = _decoded(line)
        assert "alice@example.org" not in readable, f"access log line gives the old address: {line}"
        assert "alice@new.example" not in readable, f"access log line gives the new address: {line}"

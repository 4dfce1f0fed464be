"""gunicorn's access log carries no password-reset or activation token.

Privacy policy 7 (least privilege; logs go to "Monitoring & logging" subprocessors, section 8)
and gunicorn.conf.py's own promise that secrets never land in the access log: it leaves out the
query string, but a password-reset link is /password-reset/<uid>/<token>/, and following it
wrote the token, which sets a new password for the account until it is used, into every access
log line of the request. So did the sign-up's activation link. Found by a privacy review helper;
the access log now shows those links with their token masked.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

from drake.tests.test_access_log_addresses import access_log_lines

pytestmark = pytest.mark.django_db


def test_following_a_password_reset_link_writes_no_token_to_the_access_log(client, alice, tmp_path):
    client.post("/password-reset/", {"email": "alice@example.org"})
    path = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[-1].body).group(1)
    uid, token = path.strip("/").split("/")[1:]

    for line in access_log_lines(path, "/password-reset/", tmp_path):
        assert token not in line, f"access log line gives the reset token: {line}"
        assert uid not in line, f"access log line gives the account: {line}"

"""The peer for the delivery benchmark: django-post-office on the same settings and database.

Bench-only (bench/requirements.txt); 3drake does not depend on it. Its mail goes through
Django's SMTP backend to the bench's sink with STARTTLS and AUTH, as ours does.
"""

import os

from bench.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]  # noqa: F405
EMAIL_BACKEND = "post_office.EmailBackend"
POST_OFFICE = {
    "BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"},
    "DEFAULT_PRIORITY": "medium",  # Queued, not sent in the request.
    "MESSAGE_ID_ENABLED": True,
    "LOG_LEVEL": 0,  # Keep no per-message log rows (ours keeps attempts; this is the lighter peer).
}
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("BENCH_SINK_PORT", "2599"))
EMAIL_USE_TLS = True  # STARTTLS; the sink's CA comes in through SSL_CERT_FILE.
EMAIL_HOST_USER = "bench@example.org"
EMAIL_HOST_PASSWORD = "bench-password"  # noqa: S105  (the bench sink's)
EMAIL_TIMEOUT = 10

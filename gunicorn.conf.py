"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py drake.wsgi:application`."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104  (behind a proxy)
# Sync workers, two per core plus one: the send path is short and database-bound.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30  # A request that takes longer is stuck: the send path never waits for SMTP.
graceful_timeout = 30  # SIGTERM lets in-flight requests finish.
keepalive = 5
max_requests = 10000  # Recycle workers now and then; jitter keeps them from restarting together.
max_requests_jitter = 1000
# Trust X-Forwarded-* only from the local proxy.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Access log without the query string (%(U)s is the path only): keys or addresses never land in it,
# nor the token of a password-reset, activation or email-change link (masked by the logger class).
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
logger_class = "drake.accesslog.AccessLogger"

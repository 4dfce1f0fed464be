"""3drake settings: one module, read from the environment with django-environ.

Development (DEBUG on, the default) needs no set-up: secrets are generated into the git-ignored
`var/dev.env` on first run, the database is a SQLite file, the broker is Kombu's filesystem
transport and the cache is local memory (correct for the single web process `make run` starts).
Production (DEBUG=false) has no defaults for secrets: start-up stops with a clear message instead.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from kombu.transport import resolve_transport

from drake.devsecrets import ensure_dev_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


class _Env(environ.Env):
    def get_value(self, var: str, cast: object = None, default: object = environ.Env.NOTSET, **kw: object) -> object:
        try:
            return super().get_value(var, cast=cast, default=default, **kw)
        except ValueError:
            # int("2O") says neither which variable nor what it should be; the value is not
            # repeated (the same call reads secrets).
            kind = getattr(cast, "__name__", "the expected kind")
            raise ImproperlyConfigured(f"{var} cannot be read as {kind}: check its value.") from None


env = _Env()
DEBUG = env.bool("DEBUG", default=True)

if DEBUG:
    # Values already in the environment win over the generated file.
    env.read_env(ensure_dev_secrets(VAR_DIR / "dev.env"), overwrite=False)

_missing = [name for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS") if not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        f"{' and '.join(_missing)} must be set when DEBUG=false. "
        "Generate a Fernet key with: python -c "
        "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
    )

SECRET_KEY = env.str("SECRET_KEY")
# First key encrypts, every key decrypts (cryptography's MultiFernet).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS")
# Checked here, not only by `check` (drake.E001/E002): gunicorn and the worker run no system
# checks, and with a key that is not one the web answered 500 to every new sender and the
# worker failed every queued message as unreadable. Entries counted as senders.crypto reads them.
_keys = [key.strip() for key in FIELD_ENCRYPTION_KEYS if key.strip()]
if not _keys:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds no key: set one or more comma-separated Fernet keys.")
for _index, _key in enumerate(_keys, start=1):
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS entry #{_index} is not a valid Fernet key (32 url-safe base64-encoded bytes)."
        ) from None
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
ALLOWED_HOSTS = [host.strip() for host in ALLOWED_HOSTS if host.strip()]
# Else the web starts and answers everything, /healthz included, with a bare 400.
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG=false: the host names it answers to.")
for _host in ALLOWED_HOSTS:
    if "/" in _host:
        raise ImproperlyConfigured(f"ALLOWED_HOSTS holds host names, not URLs: {_host!r}.")

INSTALLED_APPS = [
    "drake.apps.DrakeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "drake.apps.DrakeConfig",
    "auditlog",
    "accounts",
    "billing",
    "senders",
    "relay",
]

MIDDLEWARE = [
    # First: everything after it (throttles, usage and audit records) sees the client's address.
    "drake.middleware.ForwardedForMiddleware",
    "drake.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outermost of ours: records usage metadata of every /v1/ request, 413s included.
    "relay.usage.UsageMiddleware",
    # Before anything reads the body: oversized API requests are refused on Content-Length alone
    # (a chunked body's, counted by the WSGI wrapper drake.wsgi puts around all of these).
    "drake.middleware.RequestSizeLimitMiddleware",
    "drake.middleware.NulCharacterMiddleware",
    "drake.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Marks a session verified once its TOTP code was checked (admin and console two-factor).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns django-ratelimit's blocks into RATELIMIT_VIEW's 429 page.
    "django_ratelimit.middleware.RatelimitMiddleware",
    # A console view that found the shared cache down: 503, not a 500 (the API's views say so themselves).
    "drake.middleware.CacheUnavailableMiddleware",
]

ROOT_URLCONF = "drake.urls"
WSGI_APPLICATION = "drake.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "drake.legal.policy_notice",
            ],
        },
    },
]

# --- Data -------------------------------------------------------------------------------------
with warnings.catch_warnings():
    # django-environ warns of a URL it finds no engine in by printing it parsed, password included.
    warnings.simplefilter("ignore")
    try:
        _database = env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    except ValueError:
        _database = {}  # A port that is not a number, say (some of urllib's messages quote the URL).
if not _database.get("ENGINE"):
    raise ImproperlyConfigured(
        "DATABASE_URL is not a database URL (e.g. postgres://user:password@host:5432/name): check its scheme and port."
    )
DATABASES = {"default": _database}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write concurrently: WAL plus IMMEDIATE transactions make
    # SQLite wait for the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    if DATABASES["default"]["NAME"] != ":memory:":
        VAR_DIR.mkdir(exist_ok=True)
    # A file, not memory: the tests' real Celery worker runs in another process and must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: opening a PostgreSQL connection (a new backend process) per request
# or per task cost more than the whole send path (measured in bench/README.md).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_PREPARED_STATEMENTS", default=True
):
    # Server-side parameters and prepared statements: a statement run 5 times on a connection
    # is planned once, not per call. Planning was most of PostgreSQL's CPU on the send path
    # (the key lookup: 0.36 ms planning, 0.06 ms executing; bench/README.md). Turn off behind
    # a pooler in transaction mode that cannot keep prepared statements (docs/deploy.md).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A server that takes the connection and never answers (hung, or a partition: the kernel's
    # SYN retries last two minutes) held each request until gunicorn killed its worker at 30 s;
    # bounded, /healthz and the API answer 503 in seconds. libpq's option, in whole seconds.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    # Django's backend, health-checking a kept connection only after it sat idle a second
    # (drake/postgresql/base.py): the check was one of a send's two round trips.
    DATABASES["default"]["ENGINE"] = "drake.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://drake")}
CACHE_TIMEOUT_SECONDS = env.float("CACHE_TIMEOUT_SECONDS", default=2)
CACHE_IS_LOCAL = CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same cache, without a new Redis client object per call (see drake/cache.py).
    CACHES["default"]["BACKEND"] = "drake.cache.RedisCache"
    # A Redis that stops answering (a partition, a hung server) fails a request within seconds
    # (503 service_unavailable on the API), instead of holding a web worker until gunicorn kills it.
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": CACHE_TIMEOUT_SECONDS, "socket_timeout": CACHE_TIMEOUT_SECONDS}
    )
SILENCED_SYSTEM_CHECKS = [
    # Django's own RedisCache has atomic incr; django-ratelimit just does not list it.
    "django_ratelimit.W001",
]
if CACHE_IS_LOCAL:
    # Local memory is only correct for one process: `make run` starts a single gunicorn worker.
    # drake.W002 reminds production of this instead (see drake/checks.py).
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- Auth -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = 60 * 60 * 2
# Staff need a second factor (TOTP) to reach the admin; on whenever DEBUG is off.
ADMIN_REQUIRE_2FA = env.bool("ADMIN_REQUIRE_2FA", default=not DEBUG)
OTP_TOTP_ISSUER = "3drake"

# Console login throttling (django-ratelimit rates).
LOGIN_RATE_PER_IP = env.str("LOGIN_RATE_PER_IP", default="20/m")
LOGIN_RATE_PER_ACCOUNT = env.str("LOGIN_RATE_PER_ACCOUNT", default="5/m")
SIGNUP_RATE_PER_IP = env.str("SIGNUP_RATE_PER_IP", default="10/h")
for _name in ("LOGIN_RATE_PER_IP", "LOGIN_RATE_PER_ACCOUNT", "SIGNUP_RATE_PER_IP"):
    # django-ratelimit reads a rate at each request: one it cannot was a 500 on every sign-in.
    if not re.fullmatch(r"\d+/\d*[smhd][a-z]*", vars()[_name]):
        raise ImproperlyConfigured(f"{_name} is {vars()[_name]!r}: a rate such as 20/m (per s, m, h or d).")
RATELIMIT_VIEW = "accounts.views.ratelimited"

# --- Email the console itself sends (password reset, sign-up confirmation) ---------------------
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="3drake <no-reply@localhost>")
# Sign-up and the email change mail in the request: without a bound, a server that takes the
# connection and says nothing holds it until gunicorn kills the worker (its timeout is 30 s).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
if not DEBUG:
    try:
        vars().update(env.email("EMAIL_URL", default="smtp://localhost:25"))
    except ValueError:  # A port that is not a number (an unknown scheme is environ's own sentence).
        raise ImproperlyConfigured(
            "EMAIL_URL is not a mail server URL (e.g. smtp+tls://user:password@smtp.example.com:587): check its port."
        ) from None

# --- API --------------------------------------------------------------------------------------
# The whole request, attachments included. Checked on Content-Length before the body is read, or,
# sent chunked, on at most one byte more than it (drake.middleware.ChunkedBodyMiddleware).
API_MAX_REQUEST_BYTES = env.int("API_MAX_REQUEST_BYTES", default=10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_REQUEST_BYTES
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# A ceiling per account across all its keys, over each key's plan rate (requests per minute).
API_ACCOUNT_RATE_PER_MINUTE = env.int("API_ACCOUNT_RATE_PER_MINUTE", default=1200)
# Abuse controls: a sender whose recent deliveries mostly fail is paused automatically.
ABUSE_WINDOW_MINUTES = env.int("ABUSE_WINDOW_MINUTES", default=60)
ABUSE_MIN_ATTEMPTS = env.int("ABUSE_MIN_ATTEMPTS", default=10)
ABUSE_FAILURE_RATIO = env.float("ABUSE_FAILURE_RATIO", default=0.8)
# A provider's throttling reply (421 4.7.0, 432 4.3.2, 450 4.2.1, 454 4.7.0) pauses the sender this long.
PROVIDER_THROTTLE_PAUSE_SECONDS = env.int("PROVIDER_THROTTLE_PAUSE_SECONDS", default=300)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.AccountNotSuspended",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["drake.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "drake.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # JSON only, chosen by Accept (406 otherwise): `?format=` picked a renderer, and a name with
    # none was a 404 for an endpoint that exists.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "3drake API",
    "DESCRIPTION": "A neutral email relay: connect a sender, send with POST /v1/send, keep only minimized metadata.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# A scheme kombu has no transport for stopped only the worker and beat, with a traceback, while
# the web went on taking messages with a 202; an empty value meant RabbitMQ on localhost.
_scheme = CELERY_BROKER_URL.partition("://")[0] if "://" in CELERY_BROKER_URL else ""
try:
    if not _scheme:
        raise KeyError("it has none")
    resolve_transport(_scheme.partition("+")[0])  # "sqla+sqlite://": the transport is sqla.
except (KeyError, ImportError) as exc:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL has no broker transport for its scheme {_scheme!r} ({exc.args[0] if exc.args else exc}): "
        "e.g. redis://host:6379/0 or amqp://user:password@host:5672//."
    ) from None
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Its folder: var/broker, unless FILESYSTEM_BROKER_DIR says otherwise (a test run has its own,
    # drake.testing.environment, so it shares no tasks with `make run` in the same checkout).
    _broker_dir = Path(env.str("FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Otherwise kombu writes its control exchange into ./control of whatever the working directory is.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The default polls once a second; a tenth keeps local delivery snappy.
        "polling_interval": 0.1,
    }
    # kombu's, with a message's file written whole before the queue lists it (drake.broker).
    CELERY_BROKER_TRANSPORT = "drake.broker:FilesystemTransport"
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with one client per pool instead of one per publish and ack.
    CELERY_BROKER_TRANSPORT = "drake.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any task's hard time limit, so a slow task is never handed out twice.
        "visibility_timeout": 3600,
        # A Redis that takes the connection and never answers (a partition, a hung server):
        # without these a publish (the prompt after a send's commit), /healthz and the sweep
        # waited on it for good. Above the consumer's BRPOP, which Redis answers within 1 s.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }

# --- Senders and SMTP -------------------------------------------------------------------------
SMTP_ALLOW_PRIVATE_HOSTS = env.bool("SMTP_ALLOW_PRIVATE_HOSTS", default=False)
SMTP_ALLOWED_PORTS = env.str("SMTP_ALLOWED_PORTS", default="25,465,587,2525")
SMTP_CA_FILE = env.str("SMTP_CA_FILE", default="") or None
# Optional allowlist (comma-separated CIDRs): every SMTP connection must land inside one of them.
# Tests set 127.0.0.0/8 so no test can ever reach a real provider; self-hosters can pin their relay.
SMTP_ALLOWED_NETWORKS = env.list("SMTP_ALLOWED_NETWORKS", default=[])
# Every network wait on an SMTP connection (connect, each reply) is bounded by this.
SMTP_TIMEOUT = env.float("SMTP_TIMEOUT", default=10.0)
# Verification answers an HTTP request: a tighter bound so the request never hangs.
SMTP_VERIFY_TIMEOUT = env.float("SMTP_VERIFY_TIMEOUT", default=5.0)
# The name we give in EHLO (never looked up from DNS: that can hang).
SMTP_EHLO_HOSTNAME = env.str("SMTP_EHLO_HOSTNAME", default="localhost")
# SMTP PIPELINING (RFC 2920) with servers that offer it; off: one command at a time everywhere
# (for a provider that offers it and gets it wrong).
SMTP_PIPELINING = env.bool("SMTP_PIPELINING", default=True)

# --- Relay ------------------------------------------------------------------------------------
RELAY_MAX_RECIPIENTS = env.int("RELAY_MAX_RECIPIENTS", default=100)
RELAY_MAX_ATTACHMENTS = env.int("RELAY_MAX_ATTACHMENTS", default=20)
RELAY_MAX_ATTACHMENT_BYTES = env.int("RELAY_MAX_ATTACHMENT_BYTES", default=7 * 1024 * 1024)
# A message not delivered within this many hours fails with category `expired`.
RELAY_MESSAGE_LIFETIME_HOURS = env.float("RELAY_MESSAGE_LIFETIME_HOURS", default=24)
# Retry backoff: base * 2**(attempt-1), capped, with full jitter.
RELAY_RETRY_BASE_SECONDS = env.float("RELAY_RETRY_BASE_SECONDS", default=30)
RELAY_RETRY_MAX_SECONDS = env.float("RELAY_RETRY_MAX_SECONDS", default=3600)
RELAY_RETRY_MIN_SECONDS = env.float("RELAY_RETRY_MIN_SECONDS", default=5)
# A paused sender's waiting messages look again this often (they go as soon as it is fixed).
RELAY_PAUSED_RECHECK_SECONDS = env.float("RELAY_PAUSED_RECHECK_SECONDS", default=60)
# Ordered bounds: SMTP_TIMEOUT < task time limit < lease < broker visibility timeout (3600 s).
RELAY_TASK_TIME_LIMIT = env.int("RELAY_TASK_TIME_LIMIT", default=120)
RELAY_LEASE_SECONDS = env.int("RELAY_LEASE_SECONDS", default=180)
# Whether the workers' own commits (claims, outcomes, the content's deletion) wait for
# PostgreSQL to flush them to disk, as the web's do (a 202 waits for its commit to be durable,
# always). Off, as Postfix's queue manager does with delivered mail: a server crash may forget
# the last fraction of a second of outcomes, and a message whose "sent" was forgotten goes out
# again (after its lease, or at once if its claim was forgotten too); nothing is lost. 1 disk
# flush a message instead of 2.5, and −2 to +30% pipeline throughput (median +8%) in six
# alternating pairs on the bench machine (bench/README.md, tenth session).
RELAY_WORKER_SYNCHRONOUS_COMMIT = env.bool("RELAY_WORKER_SYNCHRONOUS_COMMIT", default=False)
# The sweep re-queues due messages whose task was lost (broker down, restarted, worker killed).
RELAY_SWEEP_INTERVAL_SECONDS = env.float("RELAY_SWEEP_INTERVAL_SECONDS", default=10)
RELAY_REQUEUE_AFTER_SECONDS = env.float("RELAY_REQUEUE_AFTER_SECONDS", default=60)
# Pooled SMTP connections per worker process: closed after this long idle.
RELAY_POOL_IDLE_SECONDS = env.float("RELAY_POOL_IDLE_SECONDS", default=30)
# A worker waits this long for one of a sender's connections when all are in use, then defers.
RELAY_CONNECTION_WAIT_SECONDS = env.float("RELAY_CONNECTION_WAIT_SECONDS", default=2)
# A worker sends up to this many due messages of one sender per claim, over one connection.
RELAY_BATCH_SIZE = env.int("RELAY_BATCH_SIZE", default=20)
# One pending delivery task per sender instead of one per message (relay.outbox.prompt): needs
# batches and a cache that web and workers share, which here means Redis.
RELAY_COALESCE_PROMPTS = RELAY_BATCH_SIZE > 1 and CACHES["default"]["BACKEND"] == "drake.cache.RedisCache"

# --- Retention (rotate_logs) ----------------------------------------------------------------
# Raw message and request logs follow the plan's retention_days; IPs are truncated sooner.
REQUEST_IP_RETENTION_DAYS = env.int("REQUEST_IP_RETENTION_DAYS", default=7)
# Customers' own security events (logins, sign-up, key, sender and email changes, exports) are kept this long.
SECURITY_EVENT_RETENTION_DAYS = env.int("SECURITY_EVENT_RETENTION_DAYS", default=365)
RETENTION_BATCH = env.int("RETENTION_BATCH", default=5000)

# Peers whose X-Forwarded-For is believed (the TLS proxy in front; gunicorn.conf.py reads it too).
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1"])

# Bearer token guarding GET /metrics (Prometheus); unset: the endpoint is off.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Stripe -----------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# Longest wait on Stripe's network answer, per try (two tries at most, billing/stripe_api.py):
# the console's checkout and portal must answer well before gunicorn's 30 s timeout.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=5)
# After a failed payment the account keeps its paid plan this long, then falls back to free.
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=7)

# --- HTTP and security ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
# Where SECURE_SSL_REDIRECT is on (production): load balancers and container probes ask gunicorn
# over plain HTTP, and a redirect hid the 200/503 they need. It says only "ok" or "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto, gunicorn believes it from
    # FORWARDED_ALLOW_IPS only and says so in wsgi.url_scheme, which Django reads. No
    # SECURE_PROXY_SSL_HEADER: with it Django read the header itself, from any client.
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# Else logging's own "Unable to configure handler 'console'", naming neither variable.
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT is {LOG_FORMAT!r}: use json or plain.")
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL is {LOG_LEVEL!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "drake.logging.PlainFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "drake.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs the request path on 4xx; that is fine, but never the body.
        "django.request": {"level": "ERROR"},
    },
}

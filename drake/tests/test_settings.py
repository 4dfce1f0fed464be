"""Start-up configuration: dev secrets are generated once; production refuses to start without them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from cryptography.fernet import Fernet

from drake.devsecrets import ensure_dev_secrets

ROOT = Path(__file__).resolve().parents[2]


def _django_setup(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DEBUG"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secrets():
    result = _django_setup({"DEBUG": "false", "DJANGO_SETTINGS_MODULE": "drake.settings"})
    assert result.returncode != 0
    assert "SECRET_KEY and FIELD_ENCRYPTION_KEYS must be set when DEBUG=false" in result.stderr


def test_production_refuses_to_start_without_encryption_keys():
    result = _django_setup({"DEBUG": "false", "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "drake.settings"})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must be set" in result.stderr


def test_dev_secrets_are_generated_once_and_kept(tmp_path):
    path = tmp_path / "var" / "dev.env"
    ensure_dev_secrets(path)
    first = path.read_text()
    assert "SECRET_KEY=" in first and "FIELD_ENCRYPTION_KEYS=" in first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    ensure_dev_secrets(path)
    assert path.read_text() == first


def test_dev_secrets_are_git_ignored():
    result = subprocess.run(["git", "check-ignore", "var/dev.env"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0


def test_check_refuses_a_lease_that_the_body_of_a_slow_delivery_outlasts(settings):
    # A delivery's sessions end by RELAY_TASK_TIME_LIMIT up to DATA's 354; the body and its reply
    # (a send and REPLY_WAITS waits of SMTP_TIMEOUT) then run on: they must end before the lease.
    from drake.checks import check_timeout_order

    settings.SMTP_TIMEOUT, settings.RELAY_TASK_TIME_LIMIT, settings.RELAY_LEASE_SECONDS = 10, 120, 180
    assert check_timeout_order(None) == []
    settings.SMTP_TIMEOUT = 30  # 120 + 3 * 30 > 180: a second worker could take over mid-body.
    assert [e.id for e in check_timeout_order(None)] == ["drake.E003"]


def test_check_refuses_smtp_ports_and_a_ca_file_it_cannot_use(settings, tmp_path):
    # Read only when a sender is saved or connects: a malformed SMTP_ALLOWED_PORTS made every custom
    # SMTP sender a 500, and a missing SMTP_CA_FILE every TLS connection "could not connect".
    from drake.checks import check_smtp_settings as check_smtp

    settings.SMTP_ALLOWED_PORTS, settings.SMTP_CA_FILE = "25, 587,2525", None
    assert check_smtp(None) == []
    settings.SMTP_ALLOWED_PORTS = " * "
    assert check_smtp(None) == []
    for ports in ("25,abc", "587;465", "70000", "0"):
        settings.SMTP_ALLOWED_PORTS = ports
        assert [e.id for e in check_smtp(None)] == ["drake.E004"], ports
    settings.SMTP_ALLOWED_PORTS = "587"
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings.SMTP_CA_FILE = str(tmp_path / "ca.pem")
    assert check_smtp(None) == []
    for ca_file in (tmp_path / "missing.pem", tmp_path):
        settings.SMTP_CA_FILE = str(ca_file)
        assert [e.id for e in check_smtp(None)] == ["drake.E005"], ca_file
    (tmp_path / "not-a-ca.pem").write_text("not a certificate\n")
    settings.SMTP_CA_FILE = str(tmp_path / "not-a-ca.pem")
    assert [e.id for e in check_smtp(None)] == ["drake.E005"]


def test_a_redis_cache_gets_socket_timeouts():
    """Without them a Redis that stops answering held each request until gunicorn killed its worker."""
    script = "import django; django.setup(); from django.conf import settings; print(settings.CACHES['default'])"
    env = {**os.environ, "CACHE_URL": "redis://127.0.0.1:6379/15", "CACHE_TIMEOUT_SECONDS": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert "'socket_connect_timeout': 3.0, 'socket_timeout': 3.0" in result.stdout, result.stderr


def test_check_deploy_warns_of_the_development_defaults_left_in_production():
    """`check --deploy` was clean for a production setup on SQLite, the filesystem broker and
    mail from no-reply@localhost: it ran, on one machine's files. Found by a newcomer review."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEFAULT_FROM_EMAIL", "CACHE_URL"}
    }
    env.update(
        DEBUG="false",
        SECRET_KEY="x" * 60,
        FIELD_ENCRYPTION_KEYS="0" * 43 + "=",
        ALLOWED_HOSTS="relay.example.com",
        DJANGO_SETTINGS_MODULE="drake.settings",
    )
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    for warning in ("drake.W003", "drake.W004", "drake.W005"):
        assert warning in result.stderr, result.stderr
    env.update(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/drake",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        DEFAULT_FROM_EMAIL="3drake <no-reply@relay.example.com>",
    )
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    for warning in ("drake.W003", "drake.W004", "drake.W005"):
        assert warning not in result.stderr, result.stderr


def test_check_deploy_warns_when_production_turns_the_staff_second_factor_off():
    """`check --deploy --fail-level WARNING` (docs/deploy.md: must pass before production starts)
    was clean with ADMIN_REQUIRE_2FA=false: the back office then took a staff password alone.
    Found by an operator review helper."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ADMIN_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="k" * 20 + "Zq9!xT4#pW7@mR2$vL6%nB8^cH3&jF5*" + "s" * 10,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="relay.example.com",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/drake"),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        CACHE_URL="redis://127.0.0.1:6379/15",
        DEFAULT_FROM_EMAIL="3drake <no-reply@relay.example.com>",
        DJANGO_SETTINGS_MODULE="drake.settings",
    )
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    clean = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr  # The production configuration itself passes.
    env["ADMIN_REQUIRE_2FA"] = "false"
    off = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert off.returncode != 0, f"check --deploy is clean with the staff second factor off: {off.stdout}{off.stderr}"
    assert "drake.W006" in off.stderr


def test_manage_py_says_what_is_missing_in_a_sentence():
    """It printed a twenty-line traceback ending in the sentence (an operator review)."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS"}}
    env["DEBUG"] = "false"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: SECRET_KEY and FIELD_ENCRYPTION_KEYS must be set")
    assert "Traceback" not in result.stderr


def _manage_check(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DEBUG="false",
        SECRET_KEY="x" * 60,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="relay.example.com",
    )
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "url",
    [
        "//drake:hunter2@db.example.com/drake",  # no scheme
        "postgres://drake:hunter2@db.example.com:5432x/drake",  # a typo in the port
        "",  # `DATABASE_URL=` left empty in the env file
    ],
)
def test_a_malformed_database_url_is_a_sentence_without_its_password(url):
    """It was a KeyError or ValueError traceback, and with no scheme django-environ's warning
    printed the parsed URL, password included, into the service's log. Found by an operator review."""
    result = _manage_check({"DATABASE_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: DATABASE_URL"), result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        (f"not-a-key,{Fernet.generate_key().decode()}", "FIELD_ENCRYPTION_KEYS entry #1 is not a valid Fernet key"),
        (",", "FIELD_ENCRYPTION_KEYS holds no key"),
    ],
)
def test_malformed_encryption_keys_stop_every_process_at_start(keys, says):
    """Only `check` looked at them, and gunicorn and the Celery worker run no checks: the web
    started and answered 500 to every new sender, and the worker failed every queued message
    as content_unreadable (its content deleted, never sent). Found by an operator review."""
    result = _django_setup(
        {
            "DEBUG": "false",
            "SECRET_KEY": "x" * 60,
            "FIELD_ENCRYPTION_KEYS": keys,
            "DJANGO_SETTINGS_MODULE": "drake.settings",
        }
    )
    assert result.returncode != 0
    assert says in result.stderr, result.stderr
    assert "not-a-key" not in result.stderr  # A key is a secret, even a broken one.
    assert _manage_check({"FIELD_ENCRYPTION_KEYS": keys}).stderr.startswith(f"3drake cannot start: {says}")


@pytest.mark.parametrize("url", ["reddis://:hunter2@redis.example.com:6379/0", "redis.example.com:6379", ""])
def test_a_broker_url_celery_has_no_transport_for_stops_start_up(url):
    """The web started and took every message with a 202 while the worker and beat stopped at
    once with a traceback (an empty one meant RabbitMQ on localhost, unsaid): nothing was
    delivered and only /healthz hinted why. Found by an operator review."""
    result = _manage_check({"CELERY_BROKER_URL": url})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: CELERY_BROKER_URL"), result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_mail_server_url_with_a_typo_in_its_port_is_a_sentence():
    """It was a ValueError traceback (DATABASE_URL's port had the same). Found by an operator review."""
    result = _manage_check({"EMAIL_URL": "smtp+tls://relay:hunter2@smtp.example.com:587x"})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: EMAIL_URL"), result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_number_that_is_not_one_names_its_variable_in_a_sentence():
    """RELAY_BATCH_SIZE=2O (a letter O) was a traceback ending in "invalid literal for int()
    with base 10", without the variable's name. Found by an operator review."""
    result = _manage_check({"RELAY_BATCH_SIZE": "2O"})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: RELAY_BATCH_SIZE"), result.stderr
    assert "Traceback" not in result.stderr


def test_check_refuses_an_smtp_network_allowlist_it_cannot_read(settings):
    """Read only when a sender connects: a malformed SMTP_ALLOWED_NETWORKS made every verify a
    500 and every delivery raise until its lifetime ended. Found by an operator review."""
    from drake.checks import check_smtp_settings as check_smtp

    settings.SMTP_ALLOWED_NETWORKS = ["10.0.0.0/8", " 2001:db8::/32 ", "192.0.2.7", ""]
    assert check_smtp(None) == []
    for networks in (["10.0.0/8x"], ["10.0.0.0/33"], ["smtp.example.com"]):
        settings.SMTP_ALLOWED_NETWORKS = networks
        assert [e.id for e in check_smtp(None)] == ["drake.E006"], networks


@pytest.mark.parametrize(("name", "value"), [("LOG_FORMAT", "jsno"), ("LOG_LEVEL", "verbose")])
def test_a_log_format_or_level_with_a_typo_is_a_sentence(name, value):
    """It was a traceback ending in "Unable to configure handler 'console'" (or "root logger"),
    naming neither variable. Found by an operator review."""
    result = _manage_check({name: value})
    assert result.returncode == 1
    assert result.stderr.startswith(f"3drake cannot start: {name}"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("rate", ["20perm", "20 / m", "twenty/m"])
def test_a_console_throttle_rate_that_is_not_one_stops_start_up(rate):
    """django-ratelimit reads it at each request: every console sign-in was a 500. Found by an
    operator review."""
    result = _manage_check({"LOGIN_RATE_PER_IP": rate})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: LOGIN_RATE_PER_IP"), result.stderr


@pytest.mark.parametrize("hosts", ["", "https://relay.example.com", "relay.example.com/"])
def test_production_without_a_host_name_to_answer_to_stops_start_up(hosts):
    """With ALLOWED_HOSTS unset (or a URL in it) the web started and answered every request,
    /healthz included, with a bare 400; only its log said why. Found by an operator review."""
    result = _manage_check({"ALLOWED_HOSTS": hosts})
    assert result.returncode == 1
    assert result.stderr.startswith("3drake cannot start: ALLOWED_HOSTS"), result.stderr
    assert _manage_check({"ALLOWED_HOSTS": "relay.example.com, .example.org"}).returncode == 0

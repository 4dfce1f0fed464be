"""Review (operator): `check --deploy --fail-level WARNING`, which docs/deploy.md says must pass
before production starts, is clean for a production configuration with ADMIN_REQUIRE_2FA=false:
the back office then takes a staff password alone (the brief: staff 2FA in production). It warns
of far less (SQLite, the filesystem broker, mail from localhost: drake.W003-W005)."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_warns_when_production_turns_the_staff_second_factor_off():
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

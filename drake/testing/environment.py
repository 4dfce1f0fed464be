"""A pytest plugin loaded before Django's settings (pyproject.toml's `-p`): what the test run's
environment must differ in from `make run`'s in the same checkout.

The embedded broker of development is a folder (var/broker): a test run's Celery worker and
`make run`'s, both reading it, took each other's delivery tasks. The test worker then found
no such message (and the message sent in the console waited for the sweep), and the run's
own message waited for its sweep or a test's deadline. The tests' broker folder is their own.
The worker processes the tests start inherit it with the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("FILESYSTEM_BROKER_DIR", str(Path(__file__).resolve().parents[2] / "var" / "test-broker"))

"""Benchmark settings: the real settings plus a bare DRF endpoint to compare the send API with."""

from drake.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

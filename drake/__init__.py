"""3drake: a neutral email relay API."""

from drake.celery import app as celery_app

__all__ = ("celery_app",)

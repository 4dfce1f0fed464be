"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drake.settings")

django_application = get_wsgi_application()

# Around Django's handler, not among its middleware: a WSGIRequest fixes how much of the body
# it reads (CONTENT_LENGTH) when it is made, before the first middleware runs.
from drake.middleware import ChunkedBodyMiddleware  # noqa: E402  (after django.setup(): it imports DRF)

application = ChunkedBodyMiddleware(django_application)

"""Everything under /v1/. Each app contributes its own API routes."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("senders.api_urls")),
    path("", include("relay.api_urls")),
]

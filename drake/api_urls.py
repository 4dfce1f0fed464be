"""Everything under /v1/. Each app contributes its own API routes."""

from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

urlpatterns = [
    path("", include("relay.api_urls")),  # First: POST /v1/send is the hot path.
    path(
        "openapi.json", SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]), name="openapi"
    ),
    path("", include("accounts.api_urls")),
    path("", include("senders.api_urls")),
]

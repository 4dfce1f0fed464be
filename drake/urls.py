from django.contrib import admin
from django.urls import include, path

from drake import legal, views
from relay import metrics

# The API first: Django tries these patterns in order for every request, and /v1/send is the
# hot path (the patterns do not overlap, so the order decides nothing else).
urlpatterns = [
    path("v1/", include("drake.api_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("billing/", include("billing.urls")),
    path("privacy/", legal.privacy_policy, name="privacy"),
    path("privacy/acknowledge/", legal.acknowledge, name="privacy_acknowledge"),
    path("docs/", views.docs, name="docs"),
    path("senders/", include("senders.urls")),
    path("messages/", include("relay.urls")),
    path("", include("accounts.urls")),
]

handler400 = "drake.views.bad_request"
handler404 = "drake.views.page_not_found"
handler500 = "drake.views.server_error"

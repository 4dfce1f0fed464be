from django.urls import path

from billing import views, webhooks

app_name = "billing"

urlpatterns = [
    path("", views.billing_page, name="page"),
    path("checkout/", views.checkout, name="checkout"),
    path("portal/", views.portal, name="portal"),
    path("stripe/webhook", webhooks.stripe_webhook, name="stripe_webhook"),
]

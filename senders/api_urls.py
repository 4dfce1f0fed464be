from django.urls import path

from senders import api

urlpatterns = [
    path("senders", api.SenderListView.as_view(), name="api-senders"),
    path("senders/<str:sender_id>", api.SenderDetailView.as_view(), name="api-sender"),
    path("senders/<str:sender_id>/verify", api.SenderVerifyView.as_view(), name="api-sender-verify"),
]

from django.urls import path

from relay import api

urlpatterns = [
    path("send", api.SendView.as_view(), name="api-send"),
    path("messages", api.MessageListView.as_view(), name="api-messages"),
    path("usage", api.UsageView.as_view(), name="api-usage"),
    path("messages/<str:message_id>", api.MessageDetailView.as_view(), name="api-message"),
]

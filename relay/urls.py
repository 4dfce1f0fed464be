from django.urls import path

from relay import views

app_name = "relay"

urlpatterns = [
    path("", views.message_log, name="log"),
    path("api-requests/", views.request_log, name="requests"),
    path("test/<str:sender_id>/", views.send_test, name="send_test"),
    path("<str:message_id>/", views.message_detail, name="detail"),
]

from django.urls import path

from senders import views

app_name = "senders"

urlpatterns = [
    path("", views.sender_list, name="list"),
    path("new/", views.sender_new, name="new"),
    path("<str:sender_id>/", views.sender_detail, name="detail"),
    path("<str:sender_id>/verify/", views.sender_verify, name="verify"),
    path("<str:sender_id>/delete/", views.sender_delete, name="delete"),
]

"""``path("api/", include("syncbind.urls"))``: every registered binding over HTTP."""

from django.urls import path

from syncbind.http import views

app_name = "syncbind"

urlpatterns = [
    path("events/", views.events, name="events"),
    path("<str:stream>/", views.collection, name="collection"),
    path("<str:stream>/<str:key>/", views.member, name="member"),
]

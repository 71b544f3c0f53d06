from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from shop import views

urlpatterns = [
    path("", views.index, name="index"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The same bindings over HTTP (docs/http.md): manage.py demo_edit writes through it.
    path("api/", include("syncbind.urls")),
]

from django.urls import path

from bench.app import views

urlpatterns = [
    path("bench/queries/", views.queries),
    path("bench/memory/", views.memory),
    path("bench/cpu/", views.cpu),
    path("bench/save/", views.save),
    path("bench/save-scoped/", views.save_scoped),
    path("bench/resync/", views.resync),
]

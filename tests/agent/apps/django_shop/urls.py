"""Routes: one with a path parameter (the slow one), one cheap."""

from django.urls import path

from django_shop import views

urlpatterns = [
    path("orders/<int:order_id>/", views.order_total, name="order-total"),
    path("health/", views.health, name="health"),
]

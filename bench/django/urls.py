from django.urls import path

import views

urlpatterns = [
    path("product/<int:product_id>", views.product_details),
]

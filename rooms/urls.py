from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.room_create_form, name="room_create"),
    path("rooms/<str:room_id>/", views.room_page, name="room"),
    path("rooms/<str:room_id>/qr.svg", views.room_qr, name="room_qr"),
    path("api/rooms/", views.api_room_create, name="api_room_create"),
    path("api/rooms/<str:room_id>/", views.api_room_state, name="api_room_state"),
]

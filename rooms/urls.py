from django.urls import path

from . import group_views, pwa, views

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.room_create_form, name="room_create"),
    path("rooms/<str:room_id>/", views.room_page, name="room"),
    path("rooms/<str:room_id>/qr.svg", views.room_qr, name="room_qr"),
    path("api/rooms/", views.api_room_create, name="api_room_create"),
    path("api/rooms/<str:room_id>/", views.api_room_state, name="api_room_state"),
    path("groups/", group_views.group_create_form, name="group_create"),
    path("g/<str:slug>/", group_views.group_page, name="group"),
    path("g/<str:slug>/room/", group_views.group_room_form, name="group_room"),
    path("g/<str:slug>/settings/", group_views.group_settings_form, name="group_settings"),
    path("api/groups/", group_views.api_group_create, name="api_group_create"),
    path("api/groups/<str:slug>/", group_views.api_group, name="api_group"),
    path("api/groups/<str:slug>/room/", group_views.api_group_room, name="api_group_room"),
    # The installable page (rooms/pwa.py): the worker must sit at the root to control the site.
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
    path("sw.js", pwa.service_worker, name="service_worker"),
    path("offline/", pwa.offline, name="offline"),
]

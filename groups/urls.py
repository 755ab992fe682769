from django.urls import path

from . import views

# No namespace: the URL names are the ones templates and clients have always used.
urlpatterns = [
    path("groups/", views.group_create_form, name="group_create"),
    path("g/<str:slug>/", views.group_page, name="group"),
    path("g/<str:slug>/room/", views.group_room_form, name="group_room"),
    path("g/<str:slug>/settings/", views.group_settings_form, name="group_settings"),
    path("g/<str:slug>/lunch.ics", views.group_calendar, name="group_calendar"),
    path("api/groups/", views.api_group_create, name="api_group_create"),
    path("api/groups/<str:slug>/", views.api_group, name="api_group"),
    path("api/groups/<str:slug>/room/", views.api_group_room, name="api_group_room"),
]

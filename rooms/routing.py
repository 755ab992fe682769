from django.urls import re_path

from .consumers import RoomConsumer

websocket_urlpatterns = [
    # Any id shape reaches the consumer, so an unknown id and a malformed one answer alike.
    re_path(r"^ws/rooms/(?P<room_id>[^/]{1,64})/$", RoomConsumer.as_asgi()),
]

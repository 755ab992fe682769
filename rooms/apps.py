from django.apps import AppConfig
from django.core.signals import request_finished
from django.utils.translation import gettext_lazy as _


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = _("Lunch rooms")

    def ready(self) -> None:
        from . import lookups  # noqa: F401  (registers field__any_of)
        from .database import request_connection_closed

        request_finished.connect(request_connection_closed, dispatch_uid="rooms.sqlite_request")

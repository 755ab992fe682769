from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GroupsConfig(AppConfig):
    """Lunch groups: a team's standing link, today's room, its memory and its webhook."""

    name = "groups"
    verbose_name = _("Lunch groups")

    def ready(self) -> None:
        """Fill the places rooms leaves for a group (rooms/hooks.py): rooms never imports us."""
        from rooms import hooks

        from . import selectors, services, views

        hooks.room_decided.connect(services.decision_announce, dispatch_uid="groups.announce")
        hooks.room_announced.connect(services.message_announce, dispatch_uid="groups.message")
        hooks.candidates_filter_register(selectors.candidates_fresh)
        hooks.rooms_kept_register(selectors.rooms_kept_for_history)
        hooks.room_page_context_register(views.room_page_context)

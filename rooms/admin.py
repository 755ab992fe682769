"""Staff views of rooms (status, host, lock, counts, decision, items, participants, closing).

Groups have theirs in groups/admin.py."""

from typing import TYPE_CHECKING, TypedDict, cast

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import Item, Participant, Room, RoomQuerySet

if TYPE_CHECKING:  # django-stubs' types: lazy text, and a model with a queryset's annotations
    from django_stubs_ext import StrOrPromise, WithAnnotations


class RoomCounts(TypedDict):
    """What RoomAdmin.get_queryset annotates each room with."""

    n_participants: int
    n_items: int


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, "StrOrPromise"]]:
        return list(Room.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> QuerySet[Room]:
        # RoomAdmin's queryset comes from Room.objects, so it has RoomQuerySet's filters.
        rooms = cast(RoomQuerySet, queryset)
        now = timezone.now()
        match self.value():
            case Room.Status.ACTIVE:
                return rooms.active(now)
            case Room.Status.EXPIRED:
                return rooms.expired(now)
            case Room.Status.CLOSED:
                return rooms.closed()
        return queryset


class ItemInline(admin.TabularInline):
    model = Item
    readonly_fields = ["name", "added_by", "added_at"]
    fields = tuple(readonly_fields)
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Item]:
        return super().get_queryset(request).select_related("added_by")  # one query, not 30

    def has_add_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False


class ParticipantInline(admin.TabularInline):
    """Who is in the room, whether they are coming, and whom the host removed.

    Token hashes and session keys are left out: they identify a person's place in the room.
    """

    model = Participant
    readonly_fields = ["name", "joined_at", "going_since", "kicked_at"]
    fields = tuple(readonly_fields)
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Room | None = None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status_label",
        "host_name",
        "locked",
        "participant_count",
        "item_count",
        "decision_item",
        "group",
        "created_at",
        "expires_at",
    ]
    list_filter = [StatusFilter]
    # The host's name is one column of every row: joined, not fetched per row.
    list_select_related = ["group", "host"]
    search_fields = ["id", "items__name"]
    readonly_fields = [
        "id",
        "status_label",
        "host_name",
        "locked",
        "created_at",
        "expires_at",
        "closed_at",
        "version",
        "decision_item",
        "decision_by",
        "decided_at",
        "group",
    ]
    fields = tuple(readonly_fields)
    inlines = [ItemInline, ParticipantInline]
    actions = ["close_rooms"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_participants=Count("participants", distinct=True),
                n_items=Count("items", distinct=True),
            )
        )

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        # Searching across items joins rows; distinct keeps one line per room.
        return queryset.distinct(), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rooms are made by people on the site, not by staff

    @admin.display(description=_("status"))
    def status_label(self, room: Room) -> "StrOrPromise":
        return room.status.label

    @admin.display(description=_("host"), ordering="host__name")
    def host_name(self, room: Room) -> str:
        return room.host.name if room.host is not None else "-"

    @admin.display(description=_("participants"), ordering="n_participants")
    def participant_count(self, room: "WithAnnotations[Room, RoomCounts]") -> int:
        return room.n_participants

    @admin.display(description=_("items"), ordering="n_items")
    def item_count(self, room: "WithAnnotations[Room, RoomCounts]") -> int:
        return room.n_items

    @admin.action(description=_("Close the selected rooms (connected people are told)"))
    def close_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        rooms = list(queryset.filter(Q(closed_at__isnull=True)))
        for room in rooms:
            services.room_close(room=room)
        count = len(rooms)
        self.message_user(
            request,
            ngettext("Closed %d room.", "Closed %d rooms.", count) % count,
            messages.SUCCESS,
        )

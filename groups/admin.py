"""Staff views of lunch groups: their rooms, their last decision, their webhook's last post."""

from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from rooms.models import Room

from .models import Group

if TYPE_CHECKING:  # django-stubs' types: a model with a queryset's annotations
    from django_stubs_ext import WithAnnotations


class GroupCounts(TypedDict):
    """What GroupAdmin.get_queryset annotates each group with."""

    n_rooms: int
    last_decided: datetime | None
    last_item: str | None


class GroupRoomInline(admin.TabularInline):
    """A group's rooms, newest first, with what each decided."""

    model = Room
    readonly_fields = ["id", "created_at", "decision_item", "decision_by", "decided_at"]
    fields = tuple(readonly_fields)
    ordering = ["-created_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return False


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "room_count",
        "last_decision",
        "webhook_last_status",
        "created_at",
    ]
    search_fields = ["name", "slug"]
    readonly_fields = [
        "slug",
        "created_at",
        "language",
        "webhook_host",  # never the URL: chat webhooks carry their secret in the path
        "webhook_last_status",
        "webhook_last_at",
    ]
    fields = ["name", *readonly_fields]
    inlines = [GroupRoomInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        latest = Room.objects.filter(group=OuterRef("pk"), decided_at__isnull=False).order_by(
            "-decided_at"
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_rooms=Count("rooms", distinct=True),
                last_decided=Max("rooms__decided_at"),
                last_item=Subquery(latest.values("decision_item")[:1]),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # groups are made by people on the site

    @admin.display(description=_("rooms"), ordering="n_rooms")
    def room_count(self, group: "WithAnnotations[Group, GroupCounts]") -> int:
        return group.n_rooms

    @admin.display(description=_("last decision"), ordering="last_decided")
    def last_decision(self, group: "WithAnnotations[Group, GroupCounts]") -> str:
        return group.last_item or "-"

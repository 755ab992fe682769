"""Words the pages build from values: sentences with Korean particles, days and durations."""

from datetime import datetime, timedelta

from django import template
from django.utils import dateformat, timezone
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext, pgettext

from rooms import korean

register = template.Library()


# Sentences whose Korean particle depends on the item ("%(item)s(으)로 정했어요."): filled
# here, because {% blocktranslate %} fills placeholders but cannot choose a particle.


@register.filter
def eating(item: str) -> str:
    """A recent room's decision on the home page: "Eating Pho", "Pho로 결정"."""
    return korean.interpolate(gettext("Eating %(item)s"), {"item": item})


@register.filter
def decided_on(item: str) -> str:
    """An ended room's decision: "You decided on Pho.", "Pho로 정했어요."."""
    return korean.interpolate(gettext("You decided on %(item)s."), {"item": item})


@register.filter
def open_and_eating(item: str) -> str:
    """A group's open room that has decided: "Today's room is open: eating Pho."."""
    return korean.interpolate(gettext("Today's room is open: eating %(item)s."), {"item": item})


@register.filter
def day(moment: datetime | str) -> str:
    """The day of `moment` where the viewer is: "today", "yesterday", or the date written
    the language's way ("Wednesday, November 25", "11월 25일 수요일")."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    date = timezone.localtime(moment).date()
    today = timezone.localdate()
    if date == today:
        return gettext("today")
    if date == today - timedelta(days=1):
        return gettext("yesterday")
    # Django's date format letters: l the weekday, F the month, j the day, n the month number.
    return dateformat.format(date, pgettext("a day in the history, Django date format", "l, F j"))


@register.filter
def ago(moment: datetime) -> str:
    """How long ago, in its largest unit: "just now", "5 minutes ago", "2 hours ago"."""
    if timezone.now() - moment < timedelta(minutes=1):
        return gettext("just now")
    return gettext("%(time)s ago") % {"time": timesince(moment, depth=1)}


@register.filter
def within(moment: datetime) -> str:
    """How long until, in its largest unit: "soon" in the last minute, else "in 5 minutes"."""
    if moment - timezone.now() < timedelta(minutes=1):
        return gettext("soon")
    return gettext("in %(time)s") % {"time": timeuntil(moment, depth=1)}

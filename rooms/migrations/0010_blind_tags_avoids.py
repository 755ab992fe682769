"""Blind votes and can't eat (issue 29): the room's `blind` switch, an item's tags and what a
participant avoids.

Each column has a database default, so processes of the release before, still serving
during a deploy, insert rooms, items and participants without naming them. Tags and avoids
are JSON arrays kept as text: both databases and both drivers read them back the same way.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("rooms", "0009_room_deadline_runoff")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="tags",
            field=models.TextField(blank=True, db_default="[]", default="[]"),
        ),
        migrations.AddField(
            model_name="participant",
            name="avoids",
            field=models.TextField(blank=True, db_default="[]", default="[]"),
        ),
        migrations.AddField(
            model_name="room",
            name="blind",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]

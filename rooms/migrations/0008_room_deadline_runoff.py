"""Issue 29: the deadline, `done` and the runoff.

The room's deadline and runoff end, each indexed only where set, so each process's poll for
what is due is one probe of a small index (and the version bump, which writes neither, stays
a heap-only update); whether the decision was the server's; when everyone's `done` was last
reset; a participant's `done`; an item's place in the runoff. db_default on the booleans:
the everyday add inserts items with SQL of its own that names only the columns it sets.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("groups", "0001_initial"),
        ("rooms", "0007_connection_heartbeat_hot"),
    ]

    operations = [
        migrations.AddField(
            model_name="item",
            name="runoff",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="participant",
            name="done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="room",
            name="deadline_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="room",
            name="decision_auto",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="room",
            name="done_reset_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="room",
            name="runoff_ends_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="room",
            index=models.Index(
                condition=models.Q(("deadline_at__isnull", False)),
                fields=["deadline_at"],
                name="room_deadline_due",
            ),
        ),
        migrations.AddIndex(
            model_name="room",
            index=models.Index(
                condition=models.Q(("runoff_ends_at__isnull", False)),
                fields=["runoff_ends_at"],
                name="room_runoff_due",
            ),
        ),
    ]

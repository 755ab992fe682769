"""The heartbeat column unindexed, and room left in each page for its updates (HOT).

Each heartbeat rewrote every connection's row with a new entry in each of its four indexes;
with ten thousand connections on a process and autovacuum a minute away, the dead entries
made every state read's presence lookup slower (docs/performance.md, "Office scale").
Without the index on last_seen and with half of each page kept free, PostgreSQL writes a
heartbeat as a heap-only tuple: no index entry, and the old version pruned when the page is
next read. SQLite has no such thing and is left as it is.
"""

import django.utils.timezone
from django.db import migrations, models

FILLFACTOR = 50


def _fillfactor(value: int | None):
    def apply(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        if value is None:
            schema_editor.execute("ALTER TABLE rooms_connection RESET (fillfactor)")
        else:
            schema_editor.execute(f"ALTER TABLE rooms_connection SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [("rooms", "0006_group_moved_to_groups")]

    operations = [
        migrations.AlterField(
            model_name="connection",
            name="last_seen",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.RunPython(_fillfactor(FILLFACTOR), _fillfactor(None)),
    ]

"""The Group model, moved from the rooms app: its table (rooms_group) and rows stay as they are.

Only Django's idea of where the model lives changes (state_operations), here and in
rooms/migrations/0006_group_moved_to_groups.py; no SQL runs. The model's content type moves
with it, so staff permissions and admin history that name it keep pointing at it.
"""

import django.utils.timezone
from django.db import migrations, models

import groups.models


def content_type_moved(apps, schema_editor) -> None:
    """rooms.group's content type becomes groups.group (its id, permissions and log kept)."""
    _content_type_relabelled(apps, schema_editor, source="rooms", target="groups")


def content_type_moved_back(apps, schema_editor) -> None:
    _content_type_relabelled(apps, schema_editor, source="groups", target="rooms")


def _content_type_relabelled(apps, schema_editor, *, source: str, target: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    database = schema_editor.connection.alias
    if content_types.using(database).filter(app_label=target, model="group").exists():
        return
    content_types.using(database).filter(app_label=source, model="group").update(app_label=target)
    content_types.clear_cache()


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("rooms", "0005_participant_token_seed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Group",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "slug",
                            models.CharField(
                                default=groups.models.new_group_slug,
                                editable=False,
                                max_length=32,
                                unique=True,
                            ),
                        ),
                        ("name", models.CharField(max_length=40)),
                        ("webhook_url", models.URLField(blank=True, max_length=500)),
                        ("language", models.CharField(default="ko", max_length=10)),
                        (
                            "created_at",
                            models.DateTimeField(default=django.utils.timezone.now, editable=False),
                        ),
                        ("webhook_last_status", models.CharField(blank=True, max_length=200)),
                        ("webhook_last_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"db_table": "rooms_group", "ordering": ["-created_at"]},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_moved, content_type_moved_back),
    ]

"""Room.group points at groups.Group, and the rooms app no longer holds the Group model.

State only: the table (rooms_group), its rows and the foreign key's constraint stay as they
are (groups/migrations/0001_initial.py took the model over under the same table name).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("groups", "0001_initial"),
        ("rooms", "0005_participant_token_seed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="room",
                    name="group",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="rooms",
                        to="groups.group",
                    ),
                ),
                migrations.DeleteModel(name="Group"),
            ],
            database_operations=[],
        ),
    ]

"""Command receipts: a command's idempotency key (protocol `id`) and its first answer.

One row per command a participant sent with an `id`; a resend of it is answered from here and
not applied again. Unique by participant and id (the lookup's index); they go with the
participant, and so with the room.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('rooms', '0010_blind_tags_avoids'),
    ]

    operations = [
        migrations.CreateModel(
            name='CommandReceipt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('command_id', models.CharField(max_length=64)),
                ('outcome', models.CharField(blank=True, max_length=40)),
                ('version', models.PositiveBigIntegerField(null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('participant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='rooms.participant')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('participant', 'command_id'), name='one_receipt_per_command_id')],
            },
        ),
    ]

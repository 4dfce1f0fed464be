from django.db import migrations, models
from django.db.models import F


def mark_staff_events(apps, schema_editor):
    # Events of staff on someone else's account, whose staff member is still there to tell.
    AuditEvent = apps.get_model("auditlog", "AuditEvent")
    AuditEvent.objects.filter(actor__is_staff=True).exclude(actor_id=F("account_id")).update(actor_is_staff=True)


class Migration(migrations.Migration):
    dependencies = [
        ("auditlog", "0001_initial"),
        ("accounts", "0004_policy_ack"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="actor_is_staff",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_staff_events, migrations.RunPython.noop),
    ]

from django.db import migrations


def create_free_plan(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.get_or_create(
        slug="free",
        defaults={
            "name": "Free",
            "monthly_quota": 1000,
            "rate_per_minute": 60,
            "retention_days": 30,
            "subject_policy": "sha256",
            "price_cents": 0,
            "is_default": True,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_free_plan, migrations.RunPython.noop)]

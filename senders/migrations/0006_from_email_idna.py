"""Senders connected before a from address's domain was stored in IDNA (senders.validation):
`alice@bücher.de` stayed as typed, and every message of such a sender failed content_invalid,
since neither MAIL FROM nor the From header carries the domain unencoded (no SMTPUTF8). Their
addresses are stored as new ones are. One that does not encode stays as it is."""

from django.db import migrations


def ascii_domains(apps, schema_editor):
    Sender = apps.get_model("senders", "Sender")
    for pk, from_email in Sender.objects.values_list("pk", "from_email").iterator():
        if from_email.isascii():
            continue
        local, _, domain = from_email.rpartition("@")
        try:
            ascii_email = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            continue
        Sender.objects.filter(pk=pk).update(from_email=ascii_email)


class Migration(migrations.Migration):
    dependencies = [
        ("senders", "0005_disable_permission"),
    ]

    operations = [
        migrations.RunPython(ascii_domains, migrations.RunPython.noop, elidable=True),
    ]

"""PostgreSQL: the database itself keeps audit events append-only, whatever SQL the app's role
sends. An UPDATE may only clear `actor_id` (the actor's account deleted: ON DELETE SET NULL); a
DELETE needs `drake.audit_erase` set for the transaction, as AuditEventQuerySet.erase() does
(retention, account erasure). Other databases (SQLite in development) rely on the model."""

from django.db import migrations

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION auditlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF NEW.actor_id IS NULL AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
                RETURN NEW;
            END IF;
        ELSIF coalesce(current_setting('drake.audit_erase', true), '') = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION USING MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "DROP TRIGGER IF EXISTS auditlog_append_only ON auditlog_auditevent",
    """
    CREATE TRIGGER auditlog_append_only BEFORE UPDATE OR DELETE ON auditlog_auditevent
    FOR EACH ROW EXECUTE FUNCTION auditlog_append_only()
    """,
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS auditlog_append_only ON auditlog_auditevent",
    "DROP FUNCTION IF EXISTS auditlog_append_only()",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("auditlog", "0002_actor_is_staff")]

    operations = [migrations.RunPython(forward, backward)]

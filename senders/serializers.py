from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from senders.models import Sender
from senders.presets import Provider, Security
from senders.validation import MAX_SECRET_LENGTH


class SenderSerializer(serializers.ModelSerializer):
    """What the API shows of a sender: settings and state, never the secret."""

    id = serializers.CharField(source="public_id", read_only=True)
    verified = serializers.SerializerMethodField()
    disabled = serializers.SerializerMethodField()

    class Meta:
        model = Sender
        fields = (
            "id",
            "provider",
            "from_email",
            "from_name",
            "host",
            "port",
            "security",
            "username",
            "verified",
            "verified_at",
            "last_verify_error",
            "disabled",
            "disabled_reason",
            "created_at",
        )
        read_only_fields = fields

    def get_verified(self, sender: Sender) -> bool:
        return sender.verified_at is not None

    def get_disabled(self, sender: Sender) -> bool:
        return sender.is_disabled


class SenderInputSerializer(serializers.Serializer):
    """POST /v1/senders and PATCH /v1/senders/{id} bodies."""

    provider = serializers.ChoiceField(choices=[c[0] for c in Provider.CHOICES])
    from_email = serializers.EmailField(max_length=254)
    from_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    username = serializers.CharField(max_length=254, required=False, allow_blank=True)
    password = serializers.CharField(max_length=MAX_SECRET_LENGTH, trim_whitespace=False, write_only=True)
    host = serializers.CharField(max_length=253, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    security = serializers.ChoiceField(choices=[c[0] for c in Security.CHOICES], required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """A field this body does not take is refused, not dropped: a typo (`"sercurity"`) used
        to give a 201 with the setting left out. What the API shows of a sender (`id`,
        `verified`...) may come back in a PATCH of the whole object, and is ignored as before."""
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields) - set(SenderSerializer.Meta.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: [f"Unknown field {unknown[0]!r}."]})
        return super().to_internal_value(data)

    def validate_provider(self, value: str) -> str:
        # The provider is chosen once, at creation: a PATCH may repeat it (a client sending the
        # whole object back), never change it.
        current = self.context.get("provider")
        if self.partial and value != current:
            raise serializers.ValidationError(
                f"The provider cannot be changed (this sender is {current}): connect a new sender instead."
            )
        return value

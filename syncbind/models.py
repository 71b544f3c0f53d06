"""syncbind's one table: when a user's tokens were last revoked."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TokenRevocation(models.Model):
    """Tokens of ``user`` made at or before ``revoked_at`` are refused
    (``syncbind.authentication.revoke_tokens``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    revoked_at = models.DateTimeField()

    class Meta:
        app_label = "syncbind"
        verbose_name = "token revocation"

    def __str__(self) -> str:
        return f"tokens of user {self.user_id} revoked at {self.revoked_at:%Y-%m-%d %H:%M:%S}"

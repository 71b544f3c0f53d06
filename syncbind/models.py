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


class Change(models.Model):
    """One row written to a captured table, recorded by its triggers in the writing
    transaction (:mod:`syncbind._capture`): a record exists exactly when the write
    committed. ``old_values``/``new_values`` hold the columns matching needs."""

    id = models.BigAutoField(primary_key=True)
    table = models.CharField(max_length=255, db_column="tbl")
    row = models.TextField(db_column="row_pk")
    # "I", "U" or "D".
    op = models.CharField(max_length=1)
    old_values = models.JSONField(null=True)
    new_values = models.JSONField(null=True)
    # The writing transaction (PostgreSQL's pg_current_xact_id(); null on SQLite,
    # where one writer at a time makes the id order the commit order).
    txid = models.BigIntegerField(null=True, db_index=True)
    # When it was written (seconds since the epoch), for pruning.
    at = models.BigIntegerField(db_index=True)

    class Meta:
        app_label = "syncbind"
        db_table = "syncbind_change"

    def __str__(self) -> str:
        return f"{self.op} {self.table} {self.row}"


class CaptureMark(models.Model):
    """How far the change table was pruned (``name``: ``"pruned_id"``/``"pruned_txid"``):
    a reader whose position lies before it may have missed changes."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField()

    class Meta:
        app_label = "syncbind"
        db_table = "syncbind_capture_mark"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"

"""syncbind's management commands."""

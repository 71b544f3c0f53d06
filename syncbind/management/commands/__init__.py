"""``manage.py syncbind_schema``."""

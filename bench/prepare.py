"""Prepare a benchmark database: schema, the rows, and a signed-in user's session.

``python -m bench.prepare`` (with the ``BENCH_*`` environment of bench.settings)
prints ``{"session": "<key>"}``: the cookie every load-generator connection sends.
"""

import json
import os
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("BENCH_CONTENDER", "plain")

import django  # noqa: E402

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.app.models import Category, Item  # noqa: E402

ITEMS = 1000
CATEGORIES = 10


def prepare() -> dict:
    call_command("migrate", verbosity=0, interactive=False)
    Item.objects.all().delete()
    Category.objects.all().delete()
    categories = Category.objects.bulk_create(
        Category(name=f"category {n}") for n in range(CATEGORIES)
    )
    Item.objects.bulk_create(
        Item(
            name=f"item {n}",
            price=Decimal(n % 500) + Decimal("0.99"),
            quantity=n % 7,
            category=categories[n % CATEGORIES],
        )
        for n in range(ITEMS)
    )
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {
        "session": session.session_key,
        "item_ids": list(Item.objects.values_list("pk", flat=True)),
        "category_ids": [c.pk for c in categories],
    }


if __name__ == "__main__":
    print(json.dumps(prepare()))

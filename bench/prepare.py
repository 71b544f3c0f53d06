"""Prepare a benchmark database: schema, the rows, and signed-in users' sessions.

``python -m bench.prepare`` (with the ``BENCH_*`` environment of bench.settings)
prints one JSON line: ``session``, the cookie every load-generator connection
sends (a superuser's), the rows' ids, and ``scoped``: for the scoped fan-out,
``BENCH_SCOPED_USERS`` ordinary users (1,000 by default), each with its own
session and ``PRIVATE_ROWS`` private rows, and ``PUBLIC_ROWS`` public rows.
"""

import json
import os
from datetime import timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("BENCH_CONTENDER", "plain")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.sessions.backends.base import VALID_KEY_CHARS  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.crypto import get_random_string  # noqa: E402

from bench.app.models import Category, Item, ScopedItem  # noqa: E402

ITEMS = 1000
CATEGORIES = 10
# The scoped fan-out: two pages of public rows (spread over the users), and a
# few private rows per user (so a user's own page is several rows).
PUBLIC_ROWS = 50
PRIVATE_ROWS = 3
BACKEND = "django.contrib.auth.backends.ModelBackend"


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
    return {
        "session": superuser_session(),
        "item_ids": list(Item.objects.values_list("pk", flat=True)),
        "category_ids": [c.pk for c in categories],
        "scoped": prepare_scoped(int(os.environ.get("BENCH_SCOPED_USERS", 1000))),
    }


def superuser_session() -> str:
    """The session key of the superuser every load-generator connection signs in as."""
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


@transaction.atomic
def prepare_scoped(count: int) -> dict:
    """``count`` ordinary users, each signed in with its own session, and their rows.

    In bulk: one password hash for all (no user ever logs in with it), the
    users in one ``bulk_create``, and the sessions written straight as rows,
    encoded by ``SessionStore`` as a login would have made them.
    """
    ScopedItem.objects.all().delete()
    User.objects.filter(username__startswith="scoped-").delete()
    password = make_password(None)
    users = User.objects.bulk_create(
        User(username=f"scoped-{n:05}", password=password) for n in range(count)
    )
    store = SessionStore()
    expires = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    sessions = Session.objects.bulk_create(
        Session(
            session_key=get_random_string(32, VALID_KEY_CHARS),
            session_data=store.encode(
                {
                    SESSION_KEY: str(user.pk),
                    BACKEND_SESSION_KEY: BACKEND,
                    HASH_SESSION_KEY: user.get_session_auth_hash(),
                }
            ),
            expire_date=expires,
        )
        for user in users
    )
    # Public rows first: the lowest ids, so the first is on the first public page.
    public = ScopedItem.objects.bulk_create(
        ScopedItem(
            owner=users[n % count],
            public=True,
            name=f"public item {n}",
            price=Decimal(n % 500) + Decimal("0.99"),
            quantity=n % 7,
        )
        for n in range(PUBLIC_ROWS)
    )
    private = ScopedItem.objects.bulk_create(
        ScopedItem(
            owner=user,
            public=False,
            name=f"private item {k} of {user.username}",
            price=Decimal(k) + Decimal("0.49"),
            quantity=k,
        )
        for user in users
        for k in range(PRIVATE_ROWS)
    )
    return {
        "sessions": [s.session_key for s in sessions],
        "users": [user.pk for user in users],
        "public_rows": [row.pk for row in public],
        # own_rows[i]: user i's private rows.
        "own_rows": [
            [row.pk for row in private[i * PRIVATE_ROWS : (i + 1) * PRIVATE_ROWS]]
            for i in range(count)
        ],
    }


if __name__ == "__main__":
    print(json.dumps(prepare()))

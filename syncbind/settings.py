"""The one settings object of syncbind.

Every setting lives in the ``SYNCBIND`` dict of the Django settings and is read
lazily through :data:`api_settings`, DRF's ``api_settings`` pattern: defaults
are declared once here, import strings are resolved on first use and cached,
and the cache is dropped whenever Django's ``setting_changed`` fires (tests use
``override_settings``).

Projects moving over from the older ``channels_binding`` package may keep their
``CHANNELS_BINDING`` dict for a while: it is read, including its misspelt
``AUTHENTIFICATION_CLASSES`` key, and ``manage.py check`` warns about it
(``syncbind.W015``, :mod:`syncbind.checks`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Who is connecting: tried in order at the WebSocket handshake / HTTP request.
    "AUTHENTICATION_CLASSES": ("syncbind.authentication.SessionAuthentication",),
    # Anonymous WebSocket handshakes are refused (HTTP 403) unless this is true.
    "ANONYMOUS_CONNECTION_ALLOWED": False,
    "DEFAULT_PERMISSION_CLASSES": ("syncbind.permissions.DjangoModelPermissions",),
    "DEFAULT_PAGE_SIZE": 25,
    "MAX_PAGE_SIZE": 100,
    # Worker threads that run binding code for both consumers and the HTTP views.
    "THREAD_POOL_SIZE": 16,
    # Of those, how many take new work while the others wait on the database; None:
    # 1 where Python has a GIL, the CPUs where it has none. See syncbind._workers.pool.
    "MAX_RUNNING_THREADS": None,
    # Seconds a worker may run one call while calls are queued before another is woken.
    "THREAD_HANDOFF": 0.005,
    # Seconds a worker's database statement runs while calls are queued before another
    # worker is woken beside it; None: the pool's default (WorkerPool.statement_handoff).
    "STATEMENT_HANDOFF": None,
    # Seconds one statement of a request or push may run (None: no limit); past it
    # the request is answered ``timeout``.
    "STATEMENT_TIMEOUT": 30,
    # Frames larger than this are answered with ``too_large`` without parsing.
    "MAX_MESSAGE_BYTES": 262144,
    # Bytes waiting to be sent to one WebSocket before it is closed (code 4008) as too slow.
    "MAX_OUTGOING_BYTES": 4 * 1024 * 1024,
    # Per-connection request rate, e.g. "100/s" or "1000/m"; None is unlimited.
    "RATE_LIMIT": None,
    # ``@event(detached=True)`` events one WebSocket may have running at once; beyond it
    # the event is refused (limit_exceeded).
    "MAX_DETACHED_EVENTS": 4,
    # Seconds after which a connection re-reads its user (revoked permissions,
    # deactivated users) before its next request or push; None never.
    "USER_REFRESH_INTERVAL": 60,
    # Longest accepted search query, in characters, and most words in it.
    "MAX_SEARCH_LENGTH": 256,
    "MAX_SEARCH_TERMS": 8,
    # Longest text a filter compares with, in characters.
    "MAX_FILTER_LENGTH": 1000,
    # Deepest nesting of lists and objects in a request's data.
    "MAX_JSON_DEPTH": 32,
    "EXCEPTION_HANDLER": "syncbind.exceptions.exception_handler",
    # Signed tokens made by syncbind.authentication.make_token expire after this many seconds.
    "TOKEN_MAX_AGE": 60 * 60 * 24,
    # Live subscriptions: retrieve/list/search subscribe unless a binding or request says not to.
    "AUTO_SUBSCRIBE": True,
    # Alias of the channel layer that carries change notifications between processes.
    "CHANNEL_LAYER": "default",
    # Seconds between renewals of the hub's group memberships (they expire in channels-redis).
    "GROUP_REFRESH_INTERVAL": 3600,
    # Announcements (changes, pushes, credential changes) a process keeps waiting for
    # the channel layer; past it the oldest are dropped (and the loss logged).
    "MAX_PENDING_ANNOUNCEMENTS": 10000,
    # A change batch with more primary keys than this is sent as "anything may have changed".
    "MAX_CHANGES_PER_MESSAGE": 500,
    # Live subscriptions one connection may hold, and distinct rows/pages it may follow.
    "MAX_SUBSCRIPTIONS": 200,
    "MAX_SUBSCRIPTION_KEYS": 100,
    # Distinct rows/pages one user may follow across their connections, and WebSockets
    # one user may hold open, in each process (None: unlimited; anonymous ones are not
    # counted). A handshake past the latter is closed at once with code 4029.
    "MAX_SUBSCRIPTION_KEYS_PER_USER": 300,
    "MAX_CONNECTIONS_PER_USER": 20,
    # Largest request (its frame, in bytes) that may subscribe: its data is kept.
    "MAX_SUBSCRIPTION_REQUEST_BYTES": 16384,
    # Bytes (encoded) of the pages one connection's subscriptions keep to update them
    # in place; None is unlimited.
    "MAX_SUBSCRIPTION_BYTES": 4 * 1024 * 1024,
    # Reads of one shape evaluated together, in one statement, by a push.
    "LIVE_BATCH_SIZE": 100,
    # Change capture (syncbind._capture): triggers record every write of the tables
    # streams read, on PostgreSQL and SQLite; off, or on other backends, model signals
    # announce the writes Django makes.
    "CAPTURE": True,
    # Seconds change records are kept; a process that has not read them by then
    # evaluates everything it follows again.
    "CAPTURE_RETENTION": 3600,
    # Seconds between two looks at an SQLite database for other writers' commits
    # (PostgreSQL wakes its readers with NOTIFY).
    "CAPTURE_POLL_INTERVAL": 0.05,
}

# Settings whose values are dotted paths (or lists of them) resolved on access.
IMPORT_STRINGS = frozenset(
    {"AUTHENTICATION_CLASSES", "DEFAULT_PERMISSION_CLASSES", "EXCEPTION_HANDLER"}
)

# channels_binding's name for the settings dict, its keys and class paths, mapped to
# ours. Its only authentication class returned scope["user"] (what AuthMiddlewareStack
# put there), as ours does; AUTO_CONNECT_MODEL_SIGNALS was read by nothing (signals are always connected here).
LEGACY_SETTING = "CHANNELS_BINDING"
LEGACY_KEYS = {"AUTHENTIFICATION_CLASSES": "AUTHENTICATION_CLASSES"}
LEGACY_IGNORED = frozenset({"AUTO_CONNECT_MODEL_SIGNALS"})
LEGACY_PATHS = {
    "channels_binding.authentification.DefaultDjangoUser": (
        "syncbind.authentication.SessionAuthentication"
    ),
}


def perform_import(value: Any, setting_name: str) -> Any:
    """Resolve a dotted path, or each of a list of them; leave other values alone."""
    if value is None:
        return None
    if isinstance(value, str):
        return _import(value, setting_name)
    if isinstance(value, list | tuple):
        return tuple(
            _import(item, setting_name) if isinstance(item, str) else item for item in value
        )
    return value


def _import(path: str, setting_name: str) -> Any:
    try:
        return import_string(LEGACY_PATHS.get(path, path))
    except ImportError as exc:
        raise ImportError(
            f"Could not import {path!r} for syncbind setting {setting_name!r}: {exc}"
        ) from exc


class SyncbindSettings:
    """Attribute access to syncbind settings, with defaults and resolved imports.

    ``api_settings.THREAD_POOL_SIZE`` reads the user's value or the default;
    ``api_settings.DEFAULT_PERMISSION_CLASSES`` returns classes, not strings.
    """

    def __init__(self, user_settings: dict[str, Any] | None = None) -> None:
        self._explicit = user_settings
        self._cached: set[str] = set()
        self._user: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            self._user = self._explicit if self._explicit is not None else self._read_user()
        return self._user

    @staticmethod
    def _read_user() -> dict[str, Any]:
        current = getattr(settings, "SYNCBIND", None)
        legacy = getattr(settings, LEGACY_SETTING, None)
        if legacy is None:
            return dict(current or {})
        merged = {
            LEGACY_KEYS.get(key, key): value
            for key, value in legacy.items()
            if key not in LEGACY_IGNORED
        }
        merged.update(current or {})
        return merged

    def __getattr__(self, name: str) -> Any:
        # Called only for a setting not read since the last reload: the value is then
        # kept as an instance attribute, which later reads find without this call.
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid syncbind setting: {name!r}")
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS:
            value = perform_import(value, name)
        setattr(self, name, value)
        self._cached.add(name)
        return value

    def reload(self) -> None:
        for name in self._cached:
            delattr(self, name)
        self._cached.clear()
        self._user = None


api_settings = SyncbindSettings()


def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting in {"SYNCBIND", LEGACY_SETTING}:
        api_settings.reload()


setting_changed.connect(_reload_settings, dispatch_uid="syncbind.settings.reload")

"""syncbind/settings.py: defaults, imported classes, the legacy CHANNELS_BINDING dict, reloads.

Marked ``unit``: no database, no server.
"""

import warnings

import pytest

from syncbind.authentication import SessionAuthentication
from syncbind.exceptions import exception_handler
from syncbind.permissions import AllowAny, DjangoModelPermissions, IsAuthenticated
from syncbind.settings import DEFAULTS, SyncbindSettings, api_settings, perform_import

pytestmark = pytest.mark.unit


def test_defaults_are_read_when_not_set():
    configured = SyncbindSettings({})
    page_size, depth = configured.DEFAULT_PAGE_SIZE, configured.MAX_JSON_DEPTH
    assert (page_size, depth) == (DEFAULTS["DEFAULT_PAGE_SIZE"], 32)
    assert configured.RATE_LIMIT is None
    permissions, authentication = (
        configured.DEFAULT_PERMISSION_CLASSES,
        configured.AUTHENTICATION_CLASSES,
    )
    assert permissions == (DjangoModelPermissions,)
    assert authentication == (SessionAuthentication,)
    assert configured.EXCEPTION_HANDLER is exception_handler


def test_user_values_win_and_import_strings_become_objects():
    configured = SyncbindSettings(
        {
            "MAX_PAGE_SIZE": 7,
            "DEFAULT_PERMISSION_CLASSES": ["syncbind.permissions.AllowAny", IsAuthenticated],
            "EXCEPTION_HANDLER": "syncbind.exceptions.exception_handler",
        }
    )
    classes = configured.DEFAULT_PERMISSION_CLASSES
    assert configured.MAX_PAGE_SIZE == 7
    assert classes == (AllowAny, IsAuthenticated)
    assert configured.EXCEPTION_HANDLER is exception_handler


def test_an_unknown_setting_is_an_attribute_error():
    with pytest.raises(AttributeError) as info:
        _ = SyncbindSettings({}).MAX_PAGES
    assert str(info.value) == "Invalid syncbind setting: 'MAX_PAGES'"


def test_a_path_that_does_not_import_names_the_setting():
    configured = SyncbindSettings({"DEFAULT_PERMISSION_CLASSES": ["syncbind.permissions.Nope"]})
    with pytest.raises(ImportError) as info:
        _ = configured.DEFAULT_PERMISSION_CLASSES
    assert str(info.value).startswith(
        "Could not import 'syncbind.permissions.Nope' for syncbind setting "
        "'DEFAULT_PERMISSION_CLASSES': "
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (5, 5),
        ("syncbind.permissions.AllowAny", AllowAny),
        (["syncbind.permissions.AllowAny"], (AllowAny,)),
        ((AllowAny, "syncbind.permissions.IsAuthenticated"), (AllowAny, IsAuthenticated)),
        ([], ()),
        (
            "channels_binding.authentification.DefaultDjangoUser",  # the old package's class
            SessionAuthentication,
        ),
    ],
)
def test_perform_import(value, expected):
    assert perform_import(value, "SETTING") == expected


def test_values_are_cached_until_reloaded():
    user = {"MAX_PAGE_SIZE": 7}
    configured = SyncbindSettings(user)
    assert configured.MAX_PAGE_SIZE == 7
    user["MAX_PAGE_SIZE"] = 8
    assert configured.MAX_PAGE_SIZE == 7
    configured.reload()
    assert configured.MAX_PAGE_SIZE == 8


def test_the_shared_settings_follow_django_settings(settings):
    settings.SYNCBIND = {"MAX_PAGE_SIZE": 3, "RATE_LIMIT": "5/s"}
    assert (api_settings.MAX_PAGE_SIZE, api_settings.RATE_LIMIT) == (3, "5/s")
    settings.SYNCBIND = {}
    page_size = api_settings.MAX_PAGE_SIZE
    assert page_size == DEFAULTS["MAX_PAGE_SIZE"]


def test_the_legacy_dict_is_read_under_our_names_without_a_python_warning(settings):
    settings.SYNCBIND = {"MAX_PAGE_SIZE": 9}
    settings.CHANNELS_BINDING = {
        "AUTHENTIFICATION_CLASSES": ["channels_binding.authentification.DefaultDjangoUser"],
        "AUTO_CONNECT_MODEL_SIGNALS": True,
        "MAX_PAGE_SIZE": 50,
        "DEFAULT_PAGE_SIZE": 5,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # manage.py check reports it instead (syncbind.W015)
        assert (SessionAuthentication,) == api_settings.AUTHENTICATION_CLASSES
        assert api_settings.MAX_PAGE_SIZE == 9  # SYNCBIND wins
        assert api_settings.DEFAULT_PAGE_SIZE == 5
    assert "AUTO_CONNECT_MODEL_SIGNALS" not in api_settings.user_settings
    assert "AUTHENTIFICATION_CLASSES" not in api_settings.user_settings

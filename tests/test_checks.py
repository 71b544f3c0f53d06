"""System checks: deployment traps (``check --deploy``) and settings that cannot work."""

import pytest
from django.core import checks
from django.test import override_settings

from syncbind.checks import (
    check_channel_layer,
    check_channel_layer_backends,
    check_deployment,
    check_import_strings,
    check_legacy_settings,
)

TOKEN_AUTH = ["syncbind.authentication.TokenAuthentication"]


def ids(messages):
    return sorted(message.id for message in messages)


def test_an_import_string_that_does_not_import_fails_check():
    with override_settings(SYNCBIND={"AUTHENTICATION_CLASSES": ["nowhere.Authentication"]}):
        errors = check_import_strings()
    assert ids(errors) == ["syncbind.E010"]
    assert errors[0].level == checks.ERROR
    assert "AUTHENTICATION_CLASSES" in errors[0].msg
    with override_settings(SYNCBIND={}):
        assert check_import_strings() == []


def test_the_check_command_fails_on_it():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with (
        override_settings(SYNCBIND={"EXCEPTION_HANDLER": "nowhere.handler"}),
        pytest.raises(SystemCheckError, match="syncbind.E010"),
    ):
        call_command("check", "--tag", "syncbind")


@override_settings(ALLOWED_HOSTS=["*"], ASGI_APPLICATION=None)
def test_any_host_with_sessions_is_a_deploy_warning():
    assert ids(check_deployment()) == ["syncbind.W010"]
    with override_settings(ALLOWED_HOSTS=["example.com"]):
        assert check_deployment() == []
    with override_settings(SYNCBIND={"AUTHENTICATION_CLASSES": TOKEN_AUTH}):
        assert check_deployment() == []  # tokens are not sent by the browser on its own


@override_settings(ALLOWED_HOSTS=["example.com"], ASGI_APPLICATION="tests.asgi.application")
def test_routing_without_an_origin_validator_is_a_deploy_warning():
    warnings = check_deployment()
    assert ids(warnings) == ["syncbind.W011"]
    assert "AsyncBindingConsumer, BindingConsumer" in warnings[0].msg


guarded_application = None


def test_routing_behind_allowed_hosts_origin_validator_is_fine():
    global guarded_application
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.urls import path

    from syncbind import BindingConsumer

    guarded_application = ProtocolTypeRouter(
        {
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter([path("ws/", BindingConsumer.as_asgi())]))
            )
        }
    )
    with override_settings(
        ALLOWED_HOSTS=["example.com"],
        ASGI_APPLICATION="tests.test_checks.guarded_application",
    ):
        assert check_deployment() == []


def test_tokens_in_urls_are_a_deploy_warning():
    from syncbind import authentication

    class InTheURL(authentication.TokenAuthentication):
        query_param = "token"

    authentication.InTheURL = InTheURL
    try:
        with override_settings(
            ALLOWED_HOSTS=["example.com"],
            ASGI_APPLICATION=None,
            SYNCBIND={"AUTHENTICATION_CLASSES": ["syncbind.authentication.InTheURL"]},
        ):
            assert ids(check_deployment()) == ["syncbind.W012"]
    finally:
        del authentication.InTheURL


# Django 6.1's model checks may open a connection (SQLite's JSON support is detected
# with a query), even for a runner that names no database.
@pytest.mark.django_db
def test_the_in_memory_layer_is_a_deploy_warning_only(capsys):
    """Django's test runner turns DEBUG off and runs ``check``: it must not warn there."""
    from django.test.runner import DiscoverRunner

    memory = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(DEBUG=False, CHANNEL_LAYERS=memory, ALLOWED_HOSTS=["example.com"]):
        DiscoverRunner(verbosity=1).run_checks(databases=set())
        assert "syncbind.W013" not in ids(checks.run_checks())
        assert "syncbind.W013" in ids(checks.run_checks(include_deployment_checks=True))
    printed = capsys.readouterr()
    assert "System check identified no issues" in printed.out
    assert "W013" not in printed.out + printed.err


def test_the_in_memory_layer_without_debug_is_a_warning():
    memory = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(DEBUG=False, CHANNEL_LAYERS=memory):
        assert ids(check_channel_layer()) == ["syncbind.W013"]
    with override_settings(DEBUG=True, CHANNEL_LAYERS=memory):
        assert check_channel_layer() == []
    redis = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    with override_settings(DEBUG=False, CHANNEL_LAYERS=redis):
        assert check_channel_layer() == []


# channels-binding 1.9.8's defaults, written out.
CHANNELS_BINDING = {
    "AUTHENTIFICATION_CLASSES": ("channels_binding.authentification.DefaultDjangoUser",),
    "ANONYMOUS_CONNECTION_ALLOWED": True,
    "DEFAULT_PAGE_SIZE": 10,
    "AUTO_CONNECT_MODEL_SIGNALS": True,
}


def test_a_channels_binding_dict_is_a_warning_that_names_what_to_rename():
    with override_settings(CHANNELS_BINDING=CHANNELS_BINDING):
        (warning,) = check_legacy_settings()
    assert (warning.id, warning.level) == ("syncbind.W015", checks.WARNING)
    assert warning.msg == (
        "settings.CHANNELS_BINDING (channels-binding's name) is read as SYNCBIND; "
        "keys in SYNCBIND win over it."
    )
    assert warning.hint == (
        "Rename CHANNELS_BINDING to SYNCBIND, AUTHENTIFICATION_CLASSES to "
        "AUTHENTICATION_CLASSES, and delete AUTO_CONNECT_MODEL_SIGNALS (docs/migrating.md)."
    )
    with override_settings(CHANNELS_BINDING={"DEFAULT_PAGE_SIZE": 10}):
        (warning,) = check_legacy_settings()
    assert warning.hint == "Rename CHANNELS_BINDING to SYNCBIND (docs/migrating.md)."
    with override_settings(SYNCBIND={"DEFAULT_PAGE_SIZE": 10}):
        assert check_legacy_settings() == []


def test_manage_py_check_shows_the_channels_binding_warning_and_nothing_else_warns(recwarn):
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    with override_settings(CHANNELS_BINDING=CHANNELS_BINDING, DEBUG=True):  # no W013
        call_command("check", "--tag", "syncbind", stdout=out, stderr=err)
    shown = err.getvalue()
    assert "?: (syncbind.W015) settings.CHANNELS_BINDING (channels-binding's name)" in shown
    assert "\tHINT: Rename CHANNELS_BINDING to SYNCBIND, AUTHENTIFICATION_CLASSES" in shown
    assert "System check identified 1 issue (0 silenced)." in shown
    assert [str(w.message) for w in recwarn] == []  # a warning nobody would see: gone


def test_a_channel_layer_backend_that_does_not_import_is_an_error():
    layers = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"},
        "pushes": {"BACKEND": "nonexistent.Layer"},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        errors = check_channel_layer_backends()
    assert [(e.id, e.level, e.msg) for e in errors] == [
        (
            "syncbind.E012",
            checks.ERROR,
            "CHANNEL_LAYERS['pushes'] names the backend 'nonexistent.Layer', which cannot be "
            "imported: No module named 'nonexistent'.",
        )
    ]
    assert errors[0].hint == (
        "Install the package that provides it (channels-redis: pip install 'syncbind[redis]') "
        "or correct the path: without its channel layer the site fails at the first page or push."
    )


def test_the_check_command_fails_on_a_missing_channel_layer_backend():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    missing = {"default": {"BACKEND": "nonexistent.Layer"}}
    with (
        override_settings(CHANNEL_LAYERS=missing),
        pytest.raises(SystemCheckError, match="syncbind.E012"),
    ):
        call_command("check", "--tag", "syncbind")
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    ):
        assert check_channel_layer_backends() == []

"""[syncbind/_bindings/registry.py, syncbind/settings.py, syncbind/checks.py] Settings, system checks, registry and autodiscovery."""

import types

import pytest
from django.core import checks
from django.test import override_settings

from syncbind import SyncBinding
from syncbind._bindings.registry import AlreadyRegistered, autodiscover, register_module, registry
from syncbind.authentication import SessionAuthentication
from syncbind.permissions import DjangoModelPermissions, IsAuthenticated
from syncbind.settings import DEFAULTS, api_settings
from tests.pkgapp.models import Thing
from tests.testapp.models import Product


def test_defaults():
    assert DEFAULTS["DEFAULT_PAGE_SIZE"] == 25 and DEFAULTS["MAX_PAGE_SIZE"] == 100
    assert DEFAULTS["THREAD_POOL_SIZE"] == 16 and DEFAULTS["MAX_MESSAGE_BYTES"] == 262144
    assert DEFAULTS["ANONYMOUS_CONNECTION_ALLOWED"] is False
    with override_settings(SYNCBIND={}):
        assert (SessionAuthentication,) == api_settings.AUTHENTICATION_CLASSES
        assert (DjangoModelPermissions,) == api_settings.DEFAULT_PERMISSION_CLASSES


def test_user_settings_resolve_imports_and_reload():
    with override_settings(
        SYNCBIND={"DEFAULT_PERMISSION_CLASSES": ["syncbind.permissions.IsAuthenticated"]}
    ):
        assert (IsAuthenticated,) == api_settings.DEFAULT_PERMISSION_CLASSES
        assert api_settings.DEFAULT_PAGE_SIZE == 25
    assert (DjangoModelPermissions,) == api_settings.DEFAULT_PERMISSION_CLASSES


def test_unknown_setting_is_an_error():
    with pytest.raises(AttributeError):
        _ = api_settings.NO_SUCH_SETTING


def test_bad_import_string_names_the_setting():
    with (
        override_settings(SYNCBIND={"EXCEPTION_HANDLER": "nowhere.handler"}),
        pytest.raises(ImportError, match="EXCEPTION_HANDLER"),
    ):
        _ = api_settings.EXCEPTION_HANDLER


def test_channels_binding_fallback():
    legacy = {
        # channels-binding 1.9.8's defaults, written out.
        "AUTHENTIFICATION_CLASSES": ("channels_binding.authentification.DefaultDjangoUser",),
        "ANONYMOUS_CONNECTION_ALLOWED": True,
        "DEFAULT_PAGE_SIZE": 10,
        "AUTO_CONNECT_MODEL_SIGNALS": True,
    }
    with override_settings(SYNCBIND=None, CHANNELS_BINDING=legacy):
        assert (SessionAuthentication,) == api_settings.AUTHENTICATION_CLASSES
        assert api_settings.ANONYMOUS_CONNECTION_ALLOWED is True
        assert api_settings.DEFAULT_PAGE_SIZE == 10
        assert "AUTO_CONNECT_MODEL_SIGNALS" not in api_settings.user_settings  # read by nothing
        found = checks.run_checks(tags=["syncbind"])
        assert [e.id for e in found if e.level >= checks.ERROR] == []
        assert "syncbind.W015" in [e.id for e in found]
    with override_settings(CHANNELS_BINDING=legacy, SYNCBIND={"DEFAULT_PAGE_SIZE": 7}):
        assert api_settings.DEFAULT_PAGE_SIZE == 7  # SYNCBIND wins
        assert api_settings.ANONYMOUS_CONNECTION_ALLOWED is True


@pytest.mark.django_db(transaction=True)
async def test_page_size_setting_reaches_the_wire(make_client, superuser, settings):
    settings.SYNCBIND = {"DEFAULT_PAGE_SIZE": 3, "MAX_PAGE_SIZE": 4}
    client = await make_client(superuser)
    assert (await client.send_event("testapp.Product.list"))["data"]["limit"] == 3
    assert (await client.send_event("testapp.Product.list", {"limit": 50}))["data"]["limit"] == 4


# -- system checks ---------------------------------------------------------------------


@pytest.fixture
def temporary_binding():
    """Register bindings for one test, leaving the registry as it was."""
    saved = registry.snapshot()
    yield registry.register
    registry.restore(saved)


def test_check_refuses_a_binding_without_fields(temporary_binding):
    class Careless(SyncBinding):
        model = Thing
        stream = "pkgapp.Careless"

    temporary_binding(Careless)
    errors = [e for e in checks.run_checks(tags=["syncbind"]) if e.id.startswith("syncbind.E")]
    assert [e.id for e in errors] == ["syncbind.E001"]
    assert errors[0].obj is Careless


def test_check_names_unknown_fields(temporary_binding):
    class Typo(SyncBinding):
        model = Thing
        stream = "pkgapp.Typo"
        fields = ["id", "lable"]
        ordering_fields = ["nope"]

    temporary_binding(Typo)
    assert sorted(
        e.id for e in checks.run_checks(tags=["syncbind"]) if e.id.startswith("syncbind.E")
    ) == [
        "syncbind.E002",
        "syncbind.E003",
    ]


def test_check_refuses_a_get_object_of_its_own_with_compiled_reads(temporary_binding):
    class OwnReads(SyncBinding):
        model = Thing
        stream = "pkgapp.OwnReads"
        fields = ["id", "label"]

        def get_object(self):
            return super().get_object()

        def get_page(self):
            return super().get_page()

    class DeclaredOwnReads(OwnReads):
        stream = "pkgapp.DeclaredOwnReads"
        compiled_reads = False

    temporary_binding(OwnReads)
    temporary_binding(DeclaredOwnReads)
    errors = [e for e in checks.run_checks(tags=["syncbind"]) if e.id.startswith("syncbind.E")]
    assert [(e.id, e.obj) for e in errors] == [("syncbind.E004", OwnReads)]
    assert "defines get_object() and get_page()" in errors[0].msg


def test_clean_project_passes_checks():
    # Errors only: other warnings depend on the test settings.
    assert [e for e in checks.run_checks(tags=["syncbind"]) if e.id.startswith("syncbind.E")] == []


# -- registry and autodiscovery ------------------------------------------------------------

WITHOUT_AUTODISCOVERY = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "syncbind.apps.SimpleSyncbindConfig",
    "tests.testapp",
    "tests.pkgapp",
]


def test_autodiscovered_module_and_package():
    from tests.pkgapp.bindings.things import ThingBinding
    from tests.testapp.bindings import ProductBinding

    assert registry.get("testapp.Product") is ProductBinding
    assert registry.get("pkgapp.Thing") is ThingBinding
    assert registry.get("auth.User").get_stream() == "auth.User"


def test_two_bindings_on_one_stream(temporary_binding):
    class Again(SyncBinding):
        model = Product
        fields = ["id"]

    with pytest.raises(AlreadyRegistered, match="testapp.Product"):
        temporary_binding(Again)


def test_autodiscover_is_idempotent(temporary_binding):
    before = registry.snapshot()
    autodiscover()
    assert registry.snapshot() == before


def test_failed_import_rolls_back_and_raises(temporary_binding):
    before = registry.snapshot()
    with (
        override_settings(INSTALLED_APPS=[*WITHOUT_AUTODISCOVERY, "tests.brokenapp"]),
        pytest.raises(ModuleNotFoundError, match="a_module_that_does_not_exist"),
    ):
        autodiscover()
    assert registry.snapshot() == before
    assert not registry.is_registered("brokenapp.Thing")


def test_simple_config_does_not_autodiscover(temporary_binding):
    from django.apps import apps

    registry.clear()
    with override_settings(INSTALLED_APPS=WITHOUT_AUTODISCOVERY):
        apps.get_app_config("syncbind").ready()
        assert registry.all() == []


def test_subclasses_of_an_abstract_binding_are_registered_and_it_is_not():
    """docs/bindings.md recommends ``abstract = True`` bases; the flag is not inherited."""
    from tests.testapp.bindings import OwnedBinding, ProjectBinding, TaskBinding

    assert registry.get("testapp.Task") is TaskBinding
    assert registry.get("testapp.Project") is ProjectBinding
    assert OwnedBinding not in registry.all()


class OldStyleAuthentication:
    """A channels-binding authentication class: get_user(consumer), no authenticate()."""

    async def get_user(self, consumer):
        return consumer.scope["user"]


def test_an_old_style_authentication_class_fails_the_checks():
    path = f"{__name__}.OldStyleAuthentication"
    with override_settings(SYNCBIND={"AUTHENTICATION_CLASSES": [path]}):
        errors = [e for e in checks.run_checks(tags=["syncbind"]) if e.id == "syncbind.E011"]
    assert [e.msg for e in errors] == [f"Authentication class {path} has no authenticate()."]


def test_a_binding_naming_its_model_through_get_model_is_discovered(temporary_binding):
    """Discovery asks get_model(), not the ``model``/``queryset`` attributes."""
    module = types.ModuleType("tests.hooked_bindings")

    class Hooked(SyncBinding):
        stream = "hooked.Product"
        fields = ["id", "name"]

        @classmethod
        def get_model(cls):
            return Product

    class NoModel(SyncBinding):  # a base: names no model
        fields = ["id"]

    for binding in (Hooked, NoModel):
        binding.__module__ = module.__name__
        setattr(module, binding.__name__, binding)
    assert register_module(module) == [Hooked]
    assert registry.get("hooked.Product") is Hooked

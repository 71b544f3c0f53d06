"""[syncbind/permissions.py] Permission classes, their &, | and ~, and how a binding checks
them; then the authorization matrix: who may do what, for every event and for pushes.

The first part is marked ``unit``: no database, no server; requests, users and bindings are
plain objects, and the model is only read for its app label and name.
"""

import logging
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework import permissions as drf_permissions

from syncbind import event
from syncbind._auth.connection import Connection
from syncbind._bindings.lifecycle import Lifecycle
from syncbind._bindings.registry import registry
from syncbind._bindings.request import Request
from syncbind._wire import protocol
from syncbind.bindings import BindingBase
from syncbind.drf import DRFPermission
from syncbind.exceptions import NotAuthenticated, PermissionDenied
from syncbind.permissions import (
    READ_ACTIONS,
    AllowAny,
    BasePermission,
    DjangoModelPermissions,
    DjangoModelPermissionsOrAnonReadOnly,
    IsAdminUser,
    IsAuthenticated,
)
from syncbind.testing import connect
from tests import factories
from tests.permission_matrix import (
    ANON,
    DENIED,
    ERRORS,
    MATRIX,
    OK,
    USERS,
    P,
    case_data,
    expected,
    outcome,
    rows,
)
from tests.testapp.bindings import ProductBinding
from tests.testapp.models import Note, Product

# Unit: no database, no server.


class User:
    """A user with a fixed set of permissions; remembers what it was asked."""

    def __init__(self, perms=(), is_authenticated=True, is_staff=False):
        self.perms = set(perms)
        self.is_authenticated = is_authenticated
        self.is_staff = is_staff
        self.asked = []

    def has_perms(self, perms):
        perms = list(perms)
        self.asked.append(perms)
        return all(perm in self.perms for perm in perms)


def request(user=None, data=None):
    return SimpleNamespace(
        user=AnonymousUser() if user is None else user, data=data or {}, event="shop.Thing.ping"
    )


def no_model():
    raise TypeError("names neither model nor queryset")


def binding(action="list", model=Product, queryset=no_model):
    """A binding as permissions see it: its hooks only (``model=None``: get_model() fails)."""
    return SimpleNamespace(
        action=action,
        get_model=(lambda: model) if model is not None else no_model,
        get_queryset=queryset,
    )


OBJ = object()
CALLS = []


class Yes(BasePermission):
    pass


class No(BasePermission):
    def has_permission(self, request, binding):
        return False

    def has_object_permission(self, request, binding, obj):
        return False


class EventOnly(BasePermission):
    """Grants every event, refuses every row."""

    def has_object_permission(self, request, binding, obj):
        return False


class ObjectOnly(BasePermission):
    """Refuses every event, grants every row (the inherited has_object_permission)."""

    def has_permission(self, request, binding):
        return False


class Recorded(BasePermission):
    """Grants as told, and appends its name to CALLS when asked."""

    def __init__(self, name="r", grant=True):
        self.name, self.grant = name, grant

    def has_permission(self, request, binding):
        CALLS.append(self.name)
        return self.grant

    def has_object_permission(self, request, binding, obj):
        CALLS.append(f"{self.name}:obj")
        return self.grant


class Plain:
    """Not a syncbind permission (a DRF-style one): has no operators of its own."""

    def has_permission(self, request, binding):
        CALLS.append("plain")
        return False

    def has_object_permission(self, request, binding, obj):
        return True


def verdicts(recipe):
    permission = recipe()
    req, view = request(User()), binding()
    return permission.has_permission(req, view), permission.has_object_permission(req, view, OBJ)


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


# -- composition -------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("Yes", (True, True)),
        ("No", (False, False)),
        ("Yes & No", (False, False)),
        ("No & Yes", (False, False)),
        ("Yes & Yes", (True, True)),
        ("Yes | No", (True, True)),
        ("No | No", (False, False)),
        ("~Yes", (False, False)),
        ("~No", (True, True)),
        ("~~Yes", (True, True)),
        ("~EventOnly", (False, True)),
        ("~ObjectOnly", (True, False)),
        ("EventOnly & ObjectOnly", (False, False)),
        # An operand of | grants a row only if it granted the event as well.
        ("ObjectOnly | EventOnly", (True, False)),
        ("EventOnly | ObjectOnly", (True, False)),
        ("ObjectOnly | Yes", (True, True)),
        ("(Yes | No) & ~No", (True, True)),
        ("Yes & Yes & No", (False, False)),
        ("No | No | Yes", (True, True)),
        ("~(Yes & No)", (True, True)),
        ("~(Yes | No)", (False, False)),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_composition(expression, expected):
    recipe = eval(
        expression, {"Yes": Yes, "No": No, "EventOnly": EventOnly, "ObjectOnly": ObjectOnly}
    )
    assert verdicts(recipe) == expected


@pytest.mark.unit
def test_a_combination_is_a_recipe_making_fresh_permission_instances():
    recipe = IsAuthenticated & ~IsAdminUser
    assert not isinstance(recipe, BasePermission)
    first, second = recipe(), recipe()
    assert isinstance(first, BasePermission)
    assert first is not second
    assert first.first is not second.first
    assert isinstance(first.first, IsAuthenticated)
    assert isinstance(first.second.operand, IsAdminUser)


@pytest.mark.unit
def test_and_stops_at_the_first_refusal_and_or_at_the_first_grant():
    class First(Recorded):
        def __init__(self):
            super().__init__("first", grant=False)

    class Second(Recorded):
        def __init__(self):
            super().__init__("second")

    req, view = request(User()), binding()
    assert (First & Second)().has_permission(req, view) is False
    assert CALLS == ["first"]
    CALLS.clear()
    assert (Second | First)().has_permission(req, view) is True
    assert CALLS == ["second"]
    CALLS.clear()
    assert (First | Second)().has_object_permission(req, view, OBJ) is True
    # The refused operand's row check is never asked: its event check came first.
    assert CALLS == ["first", "second", "second:obj"]


@pytest.mark.unit
def test_a_plain_class_combines_on_either_side_and_keeps_its_place():
    for recipe in (Plain | Yes, Plain & Yes, Yes | Plain, Yes & Plain):
        permission = recipe()
        assert isinstance(permission, BasePermission), recipe
    assert isinstance((Plain | Yes)().first, Plain)
    assert isinstance((Yes | Plain)().second, Plain)
    CALLS.clear()
    assert (Plain & Yes)().has_permission(request(User()), binding()) is False
    assert CALLS == ["plain"]


# -- the simple classes ------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("permission", "user", "granted"),
    [
        (AllowAny, None, True),
        (AllowAny, User(), True),
        (IsAuthenticated, None, False),
        (IsAuthenticated, User(), True),
        (IsAuthenticated, User(is_authenticated=False), False),
        (IsAdminUser, None, False),
        (IsAdminUser, User(), False),
        (IsAdminUser, User(is_staff=True), True),
        (BasePermission, None, True),
    ],
)
def test_simple_classes(permission, user, granted):
    instance = permission()
    assert instance.has_permission(request(user), binding()) is granted
    assert instance.has_object_permission(request(user), binding(), OBJ) is True
    assert instance.message is None


@pytest.mark.unit
def test_a_user_that_is_falsy_is_not_authenticated():
    req = SimpleNamespace(user=None)
    assert IsAuthenticated().has_permission(req, binding()) is False
    assert IsAdminUser().has_permission(req, binding()) is False
    assert DjangoModelPermissions().has_permission(req, binding()) is False


# -- Django model permissions --------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("action", "data", "required"),
    [
        ("retrieve", {}, ["testapp.view_product"]),
        ("list", {}, ["testapp.view_product"]),
        ("search", {}, ["testapp.view_product"]),
        ("subscribe", {}, ["testapp.view_product"]),
        ("unsubscribe", {}, []),
        ("create", {}, ["testapp.add_product"]),
        ("update", {}, ["testapp.change_product"]),
        ("delete", {}, ["testapp.delete_product"]),
        ("save", {"id": 3}, ["testapp.change_product"]),
        ("save", {"id": 0}, ["testapp.change_product"]),
        ("save", {}, ["testapp.add_product"]),
        ("save", {"id": None}, ["testapp.add_product"]),
        ("publish", {}, ["testapp.change_product"]),
    ],
)
def test_required_permissions(action, data, required):
    permission = DjangoModelPermissions()
    assert permission.get_required_permissions(action, request(User(), data), Product) == required


@pytest.mark.unit
def test_perms_map_is_overridable_per_action_and_fallback():
    class Custom(DjangoModelPermissions):
        perms_map = {
            **DjangoModelPermissions.perms_map,
            "publish": ["%(app_label)s.publish_%(model_name)s"],
            "*": [],
        }

    permission = Custom()
    assert permission.get_required_permissions("publish", request(), Product) == [
        "testapp.publish_product"
    ]
    assert permission.get_required_permissions("archive", request(), Product) == []
    user = User()
    assert permission.has_permission(request(user), binding("archive")) is True
    assert user.asked == [[]]


@pytest.mark.unit
def test_model_permissions_ask_the_user_for_exactly_the_required_ones():
    user = User(perms={"testapp.view_product"})
    permission = DjangoModelPermissions()
    assert permission.has_permission(request(user), binding("list")) is True
    assert permission.has_permission(request(user), binding("delete")) is False
    assert user.asked == [["testapp.view_product"], ["testapp.delete_product"]]


@pytest.mark.unit
def test_model_permissions_refuse_anonymous_users_without_asking():
    user = User(perms={"testapp.view_product"}, is_authenticated=False)
    assert DjangoModelPermissions().has_permission(request(user), binding("list")) is False
    assert user.asked == []


@pytest.mark.unit
def test_model_permissions_take_the_model_from_get_queryset_without_get_model():
    user = User(perms={"testapp.change_product"})
    rows = binding("ping", None, queryset=lambda: Product.objects.all())
    assert DjangoModelPermissions().has_permission(request(user), rows) is True
    assert user.asked == [["testapp.change_product"]]


@pytest.mark.unit
@pytest.mark.parametrize("queryset", [no_model, lambda: None, list], ids=["raises", "None", "list"])
def test_model_permissions_without_a_model_refuse_everyone(queryset, caplog):
    superuser = User(perms={"testapp.change_product"})
    superuser.has_perms = lambda perms: True  # as Django's for an active superuser
    for user in (User(), superuser):
        assert (
            DjangoModelPermissions().has_permission(request(user), binding("ping", None, queryset))
            is False
        )
    assert not DjangoModelPermissions().has_permission(request(), binding("ping", None, queryset))
    assert [record.levelname for record in caplog.records] == ["WARNING", "WARNING"]


@pytest.mark.unit
@pytest.mark.parametrize("action", sorted(READ_ACTIONS))
def test_anonymous_users_may_read_with_anon_read_only(action):
    permission = DjangoModelPermissionsOrAnonReadOnly()
    assert permission.has_permission(request(), binding(action)) is True


@pytest.mark.unit
@pytest.mark.parametrize("action", ["create", "update", "delete", "save", "publish"])
def test_anonymous_users_may_not_write_with_anon_read_only(action):
    permission = DjangoModelPermissionsOrAnonReadOnly()
    assert permission.has_permission(request(), binding(action)) is False


@pytest.mark.unit
def test_authenticated_users_need_the_model_permission_with_anon_read_only():
    permission = DjangoModelPermissionsOrAnonReadOnly()
    assert permission.has_permission(request(User()), binding("list")) is False
    writer = User(perms={"testapp.add_product"})
    assert permission.has_permission(request(writer, {}), binding("save")) is True
    assert writer.asked == [["testapp.add_product"]]


@pytest.mark.unit
def test_read_actions():
    assert frozenset({"retrieve", "list", "search", "subscribe", "unsubscribe"}) == READ_ACTIONS


# -- the permission hooks of Lifecycle ----------------------------------------------


class Binding(Lifecycle):
    events = {}

    def __init__(self, action=None, permission_classes=None, model=Product):
        self.action = action
        self.model = model
        if permission_classes is not None:
            self.permission_classes = permission_classes

    @classmethod
    def get_event(cls, name):
        return cls.events.get(name)


class Refuses(No):
    message = "No rows for you."


@pytest.mark.unit
def test_permission_classes_come_from_the_event_then_the_binding_then_the_settings(settings):
    Binding.events = {"publish": ("publish", SimpleNamespace(permission_classes=[IsAdminUser]))}
    Binding.events["quiet"] = ("quiet", SimpleNamespace(permission_classes=None))
    try:
        assert Binding("publish", [AllowAny]).get_permission_classes() == (IsAdminUser,)
        assert Binding("quiet", [AllowAny]).get_permission_classes() == (AllowAny,)
        assert Binding("list", [AllowAny]).get_permission_classes() == (AllowAny,)
        assert Binding(None, (IsAuthenticated,)).get_permission_classes() == (IsAuthenticated,)
        assert Binding("list").get_permission_classes() == (DjangoModelPermissions,)
        settings.SYNCBIND = {"DEFAULT_PERMISSION_CLASSES": ["syncbind.permissions.IsAdminUser"]}
        assert Binding("list").get_permission_classes() == (IsAdminUser,)
    finally:
        Binding.events = {}


@pytest.mark.unit
def test_an_empty_list_of_classes_grants_everything():
    Binding("list", []).check_permissions(request())


@pytest.mark.unit
def test_get_permissions_instantiates_and_wraps_drf_classes():
    found = Binding("list", [IsAuthenticated, drf_permissions.IsAuthenticated]).get_permissions()
    assert isinstance(found[0], IsAuthenticated)
    assert isinstance(found[1], DRFPermission)
    assert isinstance(found[1].permission, drf_permissions.IsAuthenticated)
    assert found[1].has_permission(request(User()), Binding("list")) is True
    assert found[1].has_permission(request(), Binding("list")) is False


@pytest.mark.unit
def test_a_refused_anonymous_request_is_not_authenticated():
    with pytest.raises(NotAuthenticated) as info:
        Binding("list", [IsAuthenticated]).check_permissions(request())
    assert info.value.as_error() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }


@pytest.mark.unit
def test_a_refused_user_is_denied_with_the_class_message_or_the_default():
    with pytest.raises(PermissionDenied) as info:
        Binding("list", [AllowAny, Refuses]).check_permissions(request(User()))
    assert info.value.as_error() == {"code": "permission_denied", "message": "No rows for you."}
    with pytest.raises(PermissionDenied) as info:
        Binding("list", [IsAdminUser]).check_permissions(request(User()))
    assert info.value.message == "You do not have permission to perform this action."


@pytest.mark.unit
def test_object_permissions_are_checked_class_by_class():
    Binding("retrieve", [Yes, ObjectOnly]).check_object_permissions(request(User()), OBJ)
    with pytest.raises(PermissionDenied) as info:
        Binding("retrieve", [Yes, Refuses]).check_object_permissions(request(User()), OBJ)
    assert info.value.message == "No rows for you."
    with pytest.raises(NotAuthenticated):
        Binding("retrieve", [EventOnly]).check_object_permissions(request(), OBJ)


# Through a consumer, on the test database.


class QuerysetProductBinding(ProductBinding):
    """The Product binding declared channels-binding style: ``queryset``, no ``model``."""

    model = None
    queryset = Product.objects.all()
    stream = "perms.QuerysetProduct"


class HookProductBinding(ProductBinding):
    """The Product binding declared through hooks only: no ``model``, no ``queryset``."""

    model = None
    stream = "perms.HookProduct"

    @classmethod
    def get_model(cls):
        return Product

    def get_queryset(self):
        return Product.objects.all()


# The registry needs get_model() to work, so these two are never registered: they
# are run through the lifecycle directly (as the core runs a registered binding).


class QuerysetOnlyBinding(BindingBase):
    """Names its rows only through ``get_queryset()`` (as a DRF view may)."""

    stream = "perms.QuerysetOnly"

    def get_queryset(self):
        return Product.objects.all()

    @event(atomic=False)  # atomic would need get_model() for the database
    def wipe(self, request):
        return {"deleted": self.get_queryset().delete()[0]}


class ModelessBinding(BindingBase):
    """Names no model at all: model permissions cannot say who may use it."""

    stream = "perms.Modeless"

    @event(atomic=False)  # atomic would need get_model() for the database
    def wipe(self, request):
        return {"deleted": Product.objects.all().delete()[0]}


# How the Product binding is declared -> its stream.
STYLES = {
    "model =": P,
    "queryset =": QuerysetProductBinding.stream,
    "get_model() + get_queryset()": HookProductBinding.stream,
}


@pytest.fixture
def perms_bindings():
    saved = registry.snapshot()
    for binding in (QuerysetProductBinding, HookProductBinding):
        registry.register(binding)
    yield
    registry.restore(saved)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", USERS)
@pytest.mark.parametrize("style", STYLES)
async def test_product_matrix(style, kind, consumer_app, db_call, settings, perms_bindings):
    """Every event, as ``kind``: MATRIX's outcome; a refusal writes nothing and
    reveals nothing about the row."""
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    user = None if USERS[kind] is None else await db_call(factories.UserFactory, **USERS[kind])
    seen = {}
    async with connect(user, application=consumer_app) as client:
        for case, (action, _outcomes) in MATRIX.items():
            product = await db_call(factories.ProductFactory)
            before = await db_call(rows)
            reply = await client.send_event(f"{STYLES[style]}.{action}", case_data(case, product))
            seen[case] = outcome(reply)
            if seen[case] != OK:
                assert await db_call(rows) == before, case
                assert str(product.name) not in str(reply), case
    assert seen == expected(MATRIX, USERS, kind)


def run_unregistered(binding_class, action, user):
    """The reply ``binding_class`` gives ``user`` for ``action``, through the lifecycle."""
    stream = binding_class.get_stream()
    message = protocol.Message(event=f"{stream}.{action}", stream=stream, action=action)
    request = Request(message, Connection(user=user))
    return binding_class(request=request, action=action).dispatch()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("perms", [[], ["testapp.view_product"], ["testapp.change_product"]])
def test_model_found_through_get_queryset(perms):
    """A binding naming its rows only in get_queryset() gets that model's permissions."""
    factories.ProductFactory()
    reply = run_unregistered(QuerysetOnlyBinding, "wipe", factories.UserFactory(perms=perms))
    if perms == ["testapp.change_product"]:  # a custom event: change
        assert reply["data"] == {"deleted": 1}
    else:
        assert reply["error"] == ERRORS[DENIED]
        assert Product.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["model permissions", "superuser"])
def test_no_model_fails_closed(kind, caplog):
    """Without a model DjangoModelPermissions cannot decide: it refuses everyone, and says why."""
    factories.ProductFactory()
    user = factories.UserFactory(**USERS[kind])
    with caplog.at_level(logging.WARNING, logger="syncbind"):
        reply = run_unregistered(ModelessBinding, "wipe", user)
    assert reply["error"] == ERRORS[DENIED]
    assert Product.objects.count() == 1
    assert [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name.startswith("syncbind")
    ] == [
        (
            "WARNING",
            "DjangoModelPermissions refused perms.Modeless.wipe: "
            "tests.test_permissions.ModelessBinding names no model "
            "(set model or queryset, or permission_classes).",
        )
    ]


@pytest.mark.django_db(transaction=True)
async def test_anonymous_refused_by_default(consumer_app):
    with pytest.raises(ConnectionRefusedError):
        await connect(None, application=consumer_app)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["other user", "owner", "superuser"])
async def test_owner_scoped_binding(kind, consumer_app, db_call):
    owner = await db_call(factories.UserFactory)
    note = await db_call(factories.NoteFactory, owner=owner, text="private")
    user = {
        "owner": owner,
        "other user": await db_call(factories.UserFactory),
        "superuser": await db_call(factories.SuperUserFactory),
    }[kind]
    visible = kind == "owner"  # even superusers see only their own notes through this binding
    async with connect(user, application=consumer_app) as client:
        for action, data in [
            ("retrieve", {"id": note.pk}),
            ("subscribe", {"id": note.pk}),
            ("update", {"id": note.pk, "text": "hijacked"}),
            ("delete", {"id": note.pk}),
        ]:
            reply = await client.send_event(f"testapp.Note.{action}", data)
            if visible:
                assert "data" in reply, (action, reply)
                if action == "update":
                    await db_call(Note.objects.filter(pk=note.pk).update, text="private")
            else:
                assert reply["error"] == {"code": "not_found", "message": "Not found."}, action
        if not visible:
            listed = (await client.send_event("testapp.Note.list"))["data"]
            assert listed["count"] == 0 and "private" not in str(listed)
            assert await db_call(Note.objects.filter(pk=note.pk, text="private").exists)
            # And no push about it ever arrives.
            await db_call(Note.objects.filter(pk=note.pk).update, text="still private")
            note.text = "changed"
            await db_call(note.save)
            await client.assert_nothing_more()


@pytest.mark.django_db(transaction=True)
async def test_pushes_only_to_those_who_may_read(consumer_app, db_call, settings):
    settings.SYNCBIND = {"ANONYMOUS_CONNECTION_ALLOWED": True}
    product = await db_call(factories.ProductFactory)
    reader = await db_call(factories.UserFactory, perms=["testapp.view_product"])
    stranger = await db_call(factories.UserFactory)
    async with (
        connect(reader, application=consumer_app) as r,
        connect(stranger, application=consumer_app) as s,
        connect(None, application=consumer_app) as anon,
    ):
        await r.send_event(f"{P}.retrieve", {"id": product.pk})
        await r.send_event(f"{P}.list")
        assert (await s.send_event(f"{P}.subscribe", {"id": product.pk}))["error"]["code"] == DENIED
        assert (await s.send_event(f"{P}.list"))["error"]["code"] == DENIED
        assert (await anon.send_event(f"{P}.list"))["error"]["code"] == ANON
        product.name = "visible to readers only"
        await db_call(product.save)
        assert (await r.receive_push(f"{P}.retrieve"))["data"]["name"] == "visible to readers only"
        assert (await r.receive_push(f"{P}.list"))["data"]["count"] == 1
        await s.assert_nothing_more()
        await anon.assert_nothing_more()

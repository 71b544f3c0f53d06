"""[syncbind/schema] Streams describe themselves: the describe event, OPTIONS, and
``manage.py syncbind_schema``'s AsyncAPI and OpenAPI documents checked by real validators
(issue 25, item 2; item 7: OPTIONS)."""

import io
import json

import jsonschema
import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from openapi_spec_validator import validate as validate_openapi

from syncbind import SyncBinding, event
from syncbind.permissions import IsAuthenticated
from syncbind.schema.describe import describe
from syncbind.serializers import ModelSerializer
from syncbind.testing import connect, override_bindings
from tests import factories
from tests.node_tools import node_file
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"
PRODUCT_FIELDS = [
    "id",
    "name",
    "price",
    "category",
    "owner",
    "tags",
    "in_stock",
    "status",
    "stock",
    "sku",
    "created",
]


async def test_describe_answers_the_streams_description(superuser):
    async with connect(superuser) as client:
        reply = await client.send_event(f"{PRODUCT}.describe")
    described = reply["data"]
    assert reply["event"] == f"{PRODUCT}.describe"
    assert described["stream"] == PRODUCT
    row = described["schemas"]["row"]
    assert list(row["properties"]) == PRODUCT_FIELDS
    assert row["properties"]["price"] == {"type": "string", "format": "decimal", "title": "price"}
    assert row["properties"]["tags"]["type"] == "array"
    assert row["properties"]["owner"]["readOnly"] is True
    assert row["properties"]["status"]["enum"] == ["draft", "live"]
    assert described["writable"] == [
        "category",
        "in_stock",
        "name",
        "price",
        "status",
        "stock",
        "tags",
    ]
    assert described["schemas"]["create"]["required"] == ["name", "price", "category"]
    assert described["filters"] == [
        "category",
        "name__icontains",
        "price",
        "price__gt",
        "price__lt",
    ]
    assert described["search_fields"] == ["name", "category__name"]
    assert described["ordering"] == {"fields": ["name", "price"], "default": ["id"]}
    assert described["pagination"] == {"page_size": 25, "max_page_size": 100}
    events = described["events"]
    assert {"retrieve", "list", "create", "restock", "ping"} <= set(events)
    assert events["restock"]["builtin"] is False
    assert events["retrieve"]["reply"] == {"$ref": "#/schemas/row"}
    assert "not_found" in events["retrieve"]["errors"]
    assert all(entry["permitted"] for entry in events.values())


async def test_describe_is_refused_as_a_retrieve_is_and_says_what_the_user_may_send(db_call):
    user = await db_call(factories.UserFactory)
    async with connect(user) as client:
        refused = await client.send_event(f"{PRODUCT}.describe")
        retrieve = await client.send_event(f"{PRODUCT}.retrieve", {"id": 1})
        assert refused["error"] == retrieve["error"]
        assert refused["error"]["code"] == "permission_denied"

    await db_call(
        lambda: user.user_permissions.add(Permission.objects.get(codename="view_product"))
    )
    user = await db_call(type(user).objects.get, pk=user.pk)  # permissions read afresh
    async with connect(user) as client:
        events = (await client.send_event(f"{PRODUCT}.describe"))["data"]["events"]
    permitted = {name for name, entry in events.items() if entry["permitted"]}
    # DjangoModelPermissions: view alone; ping is AllowAny.
    assert permitted == {
        "describe",
        "retrieve",
        "list",
        "search",
        "subscribe",
        "unsubscribe",
        "ping",
    }


async def test_describe_takes_no_parameters(superuser):
    async with connect(superuser) as client:
        reply = await client.send_event(f"{PRODUCT}.describe", {"page": 1})
    assert reply["error"]["code"] == "invalid"
    assert list(reply["error"]["fields"]) == ["page"]


class StaffFieldsBinding(SyncBinding):
    """Staff see the stock and the owner; others only the name and price."""

    model = Product
    stream = "schema.StaffFields"
    permission_classes = [IsAuthenticated]
    event_schemas = {
        "bump": {
            "data": {
                "type": "object",
                "properties": {"by": {"type": "integer"}},
                "required": ["by"],
            },
            "reply": {"$ref": "#/schemas/row"},
        }
    }
    staff = ModelSerializer(Product, fields=["id", "name", "price", "stock", "owner"])
    public = ModelSerializer(Product, fields=["id", "name", "price"])

    def get_serializer(self):
        return self.staff if self.request.user.is_staff else self.public

    @event
    def bump(self, request):
        """Raise the price."""
        return {}


async def test_a_connection_is_described_the_fields_it_may_see(db_call):
    staff = await db_call(factories.UserFactory, is_staff=True)
    other = await db_call(factories.UserFactory)
    with override_bindings(StaffFieldsBinding):
        async with connect(staff) as client:
            seen_by_staff = (await client.send_event("schema.StaffFields.describe"))["data"]
        async with connect(other) as client:
            seen_by_other = (await client.send_event("schema.StaffFields.describe"))["data"]
    assert list(seen_by_staff["schemas"]["row"]["properties"]) == [
        "id",
        "name",
        "price",
        "stock",
        "owner",
    ]
    assert list(seen_by_other["schemas"]["row"]["properties"]) == ["id", "name", "price"]
    assert seen_by_other["writable"] == ["name", "price"]
    bump = seen_by_other["events"]["bump"]
    assert bump["data"]["required"] == ["by"]
    assert bump["reply"] == {"$ref": "#/schemas/row"}
    assert bump["description"] == "Raise the price."


def test_a_drf_serializer_is_described_with_its_fields_for_the_request(transactional_db):
    from rest_framework import serializers

    class PerUserSerializer(serializers.ModelSerializer):
        cost = serializers.DecimalField(source="price", max_digits=8, decimal_places=2)
        label = serializers.SerializerMethodField()

        class Meta:
            model = Product
            fields = ["id", "name", "cost", "category", "tags", "label", "status"]

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if not self.context["request"].user.is_staff:
                self.fields.pop("cost")

        def get_label(self, obj):
            return obj.name

    class DRFBinding(SyncBinding):
        model = Product
        stream = "schema.DRF"
        serializer_class = PerUserSerializer

    staff = factories.UserFactory(is_staff=True)
    described = describe(DRFBinding, user=staff)
    row = described["schemas"]["row"]["properties"]
    assert row["cost"] == {"type": "string", "format": "decimal", "title": "Cost"}
    assert row["category"]["type"] == "integer"
    assert row["tags"] == {"type": "array", "items": {"type": "integer"}, "title": "Tags"}
    assert row["label"] == {"title": "Label", "readOnly": True}
    assert row["status"]["enum"] == ["draft", "live"]
    assert described["schemas"]["create"]["required"] == ["name", "cost", "category"]
    assert "cost" not in describe(DRFBinding)["schemas"]["row"]["properties"]  # anonymous


def test_options_answers_the_description_with_allow(superuser):
    client = Client()
    client.force_login(superuser)
    for path, allow in [
        (f"/api/{PRODUCT}/", "GET, POST, OPTIONS"),
        (f"/api/{PRODUCT}/1/", "GET, PATCH, PUT, DELETE, OPTIONS, POST"),
    ]:
        response = client.options(path)
        assert (response.status_code, response["Allow"]) == (200, allow)
        assert response["Content-Type"] == "application/json"
        described = response.json()
        assert described["stream"] == PRODUCT
        assert list(described["schemas"]["row"]["properties"]) == PRODUCT_FIELDS


def test_options_is_refused_as_a_retrieve_is(transactional_db):
    assert Client().options(f"/api/{PRODUCT}/").status_code == 401
    client = Client()
    client.force_login(factories.UserFactory())
    refused = client.options(f"/api/{PRODUCT}/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    missing = client.options("/api/shop.Basket/")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "unknown_event")


def test_describe_has_its_one_route(superuser):
    client = Client()
    client.force_login(superuser)
    response = client.post(f"/api/{PRODUCT}/describe/", "{}", content_type="application/json")
    assert (response.status_code, response["Allow"]) == (405, "GET, PATCH, PUT, DELETE, OPTIONS")


def schema_output(*args):
    out = io.StringIO()
    call_command("syncbind_schema", *args, stdout=out)
    return out.getvalue()


def test_the_openapi_document_validates_and_names_every_route(transactional_db):
    document = json.loads(schema_output("--format", "openapi"))
    validate_openapi(document)
    paths = document["paths"]
    assert set(paths[f"/api/{PRODUCT}/"]) == {"get", "post", "options"}
    assert set(paths[f"/api/{PRODUCT}/{{id}}/"]) == {
        "get",
        "patch",
        "put",
        "delete",
        "options",
        "parameters",
    }
    restock = paths[f"/api/{PRODUCT}/restock/"]["post"]
    assert restock["operationId"] == f"{PRODUCT}.restock"
    created = paths[f"/api/{PRODUCT}/"]["post"]["responses"]
    assert created["201"]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{PRODUCT}.written"
    }
    parameters = [p["name"] for p in paths[f"/api/{PRODUCT}/"]["get"]["parameters"]]
    assert parameters == ["page", "limit", "ordering", "query"] + [
        "price",
        "price__lt",
        "price__gt",
        "category",
        "name__icontains",
    ]
    assert "/api/events/" in paths


def test_the_asyncapi_document_validates_against_the_official_schema(transactional_db):
    schema = json.loads(node_file("@asyncapi/specs/schemas/3.0.0-without-$id.json").read_text())
    document = json.loads(schema_output())  # AsyncAPI is the default
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(document)]
    assert errors == []
    assert document["asyncapi"] == "3.0.0"
    operation = document["operations"][f"{PRODUCT}.list"]
    assert operation["action"] == "receive"
    assert operation["reply"]["messages"] == [
        {"$ref": f"#/channels/{PRODUCT}/messages/list.reply"},
        {"$ref": f"#/channels/{PRODUCT}/messages/error"},
    ]
    reply = document["channels"][PRODUCT]["messages"]["list.reply"]["payload"]
    assert reply["properties"]["data"] == {"$ref": f"#/components/schemas/{PRODUCT}.page"}
    assert document["operations"][f"{PRODUCT}.retrieve.push"]["action"] == "send"


def test_the_asyncapi_validation_catches_a_broken_document(transactional_db):
    """The validator is not a formality: an operation without its channel fails it."""
    schema = json.loads(node_file("@asyncapi/specs/schemas/3.0.0-without-$id.json").read_text())
    document = json.loads(schema_output())
    del document["operations"][f"{PRODUCT}.list"]["channel"]
    assert not jsonschema.Draft7Validator(schema).is_valid(document)


def test_the_command_writes_a_file_and_describes_as_a_user(tmp_path, transactional_db):
    staff = factories.UserFactory(is_staff=True)
    target = tmp_path / "events.ts"
    with override_bindings(StaffFieldsBinding):
        call_command("syncbind_schema", "--format", "typescript", "--output", str(target))
        anonymous = target.read_text()
        as_staff = schema_output("--format", "typescript", "--user", staff.username)
    assert (
        'export type SchemaStaffFieldsRow = { "id": number; "name": string; "price": string };'
        in anonymous
    )
    assert '"stock": number' in as_staff
    assert (
        '"schema.StaffFields.bump": { data: { "by": number }; reply: SchemaStaffFieldsRow };'
        in anonymous
    )
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("syncbind_schema", "--user", "nobody")


def test_the_client_package_json_names_the_module_its_types_and_this_version():
    import re

    from syncbind import __version__
    from tests.servers import ROOT

    client = ROOT / "syncbind" / "static" / "syncbind"
    package = json.loads((client / "package.json").read_text())
    # PEP 440's "0.1.0.dev0" is semver's "0.1.0-dev.0".
    assert package["version"] == re.sub(r"\.dev(\d+)$", r"-dev.\1", __version__)
    assert package["exports"]["."] == {
        "types": "./syncbind.d.ts",
        "import": "./syncbind.js",
        "default": "./syncbind.js",
    }
    assert package["type"] == "module"
    assert all((client / name).is_file() for name in package["files"])


def test_a_read_only_binding_describes_its_events_and_no_writes(transactional_db):
    from syncbind import ReadOnlyBinding

    class ReadOnlyProducts(ReadOnlyBinding):
        model = Product
        stream = "schema.ReadOnly"
        fields = ["id", "name"]

    described = describe(ReadOnlyProducts)
    assert set(described["events"]) == {
        "describe",
        "retrieve",
        "list",
        "search",
        "subscribe",
        "unsubscribe",
    }
    assert set(described["pushes"]) == {"retrieve", "delete", "list", "search"}
    assert "permitted" not in described["events"]["list"]  # no connection asked

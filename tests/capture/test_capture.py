"""[syncbind/_capture/] Every committed write of a bound table is pushed, whoever made it (issue 22).

The triggers installed by ``migrate`` record each write in the change table; this
process's reader hands the records to its hub. Each writer below sends no model
signal (but ``save()``), so before capture none of them was pushed.
"""

import shutil
import subprocess
from decimal import Decimal

import pytest
from django.db import connection, transaction

from syncbind import SyncBinding
from syncbind import _capture as capture
from syncbind._capture.follower import follower_for
from syncbind._live import changes
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings, settle
from tests import factories
from tests.testapp.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCT = "testapp.Product"
CATEGORY = "testapp.Category"


async def following(make_client, superuser, db_call, product):
    """A client following ``product`` and the page of its category."""
    client = await make_client(superuser)
    assert (await client.send_event(f"{PRODUCT}.retrieve", {"id": product.pk}))["data"]
    page = await client.send_event(
        f"{PRODUCT}.list", {"filters": {"category": product.category_id}}
    )
    assert page["data"]["count"] == 1
    return client


def names(push):
    return sorted(row["name"] for row in push["data"]["rows"])


def rename_category(pk, name):
    """Raw SQL, behind the ORM's back."""
    with connection.cursor() as cursor:
        table = Category._meta.db_table
        cursor.execute(f"UPDATE {table} SET name = %s WHERE id = %s", [name, pk])


def test_capture_is_on_for_the_test_database_and_its_triggers_are_installed():
    assert capture.enabled("default")
    assert capture.covers(Product) and capture.covers(Category)
    assert capture.covers(Product.tags.through)  # a table a read may filter through


async def test_each_kind_of_write_without_a_signal_is_pushed(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="first")
    category = product.category
    client = await following(make_client, superuser, db_call, product)

    await db_call(Product.objects.filter(pk=product.pk).update, name="updated")
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "updated"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["updated"]

    made = [Product(name=f"bulk {n}", price=Decimal("1.00"), category=category) for n in (1, 2)]
    await db_call(Product.objects.bulk_create, made)
    page = await client.receive_push(f"{PRODUCT}.list")
    assert names(page) == ["bulk 1", "bulk 2", "updated"]

    def bulk_update():
        row = Product.objects.get(pk=product.pk)
        row.name = "bulk updated"
        Product.objects.bulk_update([row], ["name"])

    await db_call(bulk_update)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "bulk updated"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == [
        "bulk 1",
        "bulk 2",
        "bulk updated",
    ]

    def raw_sql():
        with connection.cursor() as cursor:
            table = Product._meta.db_table
            cursor.execute(f"UPDATE {table} SET name = %s WHERE id = %s", ["raw", product.pk])

    await db_call(raw_sql)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "raw"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["bulk 1", "bulk 2", "raw"]

    await db_call(lambda: Product.objects.filter(name__startswith="bulk").delete())
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["raw"]

    await db_call(lambda: Product.objects.filter(pk=product.pk).delete())
    gone = await client.receive_push(f"{PRODUCT}.delete")
    assert gone["data"] == {"id": product.pk}
    assert (await client.receive_push(f"{PRODUCT}.list"))["data"]["count"] == 0
    await client.assert_nothing_more()


def _other_program_update(table, pk, name):
    """Run an UPDATE from another program: the sqlite3 or psql command line."""
    settings = connection.settings_dict
    sql = f"UPDATE {table} SET name = '{name}' WHERE id = {pk};"
    if connection.vendor == "sqlite":
        command = [shutil.which("sqlite3") or "sqlite3", settings["NAME"], sql]
    else:
        command = [
            shutil.which("psql") or "psql",
            "-h",
            settings["HOST"] or "127.0.0.1",
            "-p",
            str(settings["PORT"] or 5432),
            "-U",
            settings["USER"],
            "-d",
            settings["NAME"],
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


async def test_a_write_by_another_program_is_pushed(make_client, superuser, db_call):
    product = await db_call(factories.ProductFactory, name="first")
    client = await following(make_client, superuser, db_call, product)
    await db_call(_other_program_update, Product._meta.db_table, product.pk, "elsewhere")
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "elsewhere"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["elsewhere"]
    await client.assert_nothing_more()


async def test_a_save_is_pushed_once_and_announces_nothing_on_the_channel_layer(
    make_client, superuser, db_call, monkeypatch
):
    announced = []
    monkeypatch.setattr(changes, "send", lambda group, message, what: announced.append(message))
    product = await db_call(factories.ProductFactory, name="first")
    client = await following(make_client, superuser, db_call, product)
    product.name = "saved"
    await db_call(product.save)
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "saved"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["saved"]
    await client.assert_nothing_more()
    assert [m for m in announced if m.get("type") == "syncbind.changes"] == []


async def test_nothing_is_pushed_for_a_rolled_back_transaction_or_savepoint(
    make_client, superuser, db_call
):
    product = await db_call(factories.ProductFactory, name="first")
    client = await following(make_client, superuser, db_call, product)

    class Undone(Exception):
        pass

    def rolled_back():
        with pytest.raises(Undone), transaction.atomic():
            Product.objects.filter(pk=product.pk).update(name="never")
            raise Undone

    await db_call(rolled_back)
    await client.assert_nothing_more()

    def savepoint_rolled_back():
        with transaction.atomic():
            with pytest.raises(Undone), transaction.atomic():
                Product.objects.filter(pk=product.pk).update(name="never either")
                raise Undone
            Product.objects.filter(pk=product.pk).update(price=Decimal("2.50"))

    await db_call(savepoint_rolled_back)
    push = await client.receive_push(f"{PRODUCT}.retrieve")
    assert (push["data"]["name"], push["data"]["price"]) == ("first", "2.50")
    await client.receive_push(f"{PRODUCT}.list")
    await client.assert_nothing_more()


async def test_a_reader_whose_position_was_pruned_evaluates_what_it_follows_again(
    make_client, superuser, db_call, settings
):
    product = await db_call(factories.ProductFactory, name="first")
    client = await following(make_client, superuser, db_call, product)
    follower = follower_for("default")
    # The reader is held while a write is recorded and pruned away before it reads.
    follower.reading.acquire()
    try:
        await db_call(Product.objects.filter(pk=product.pk).update, name="pruned")
        assert await db_call(follower.log.prune, -1) >= 1
    finally:
        follower.reading.release()
    await settle()
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["name"] == "pruned"
    assert names(await client.receive_push(f"{PRODUCT}.list")) == ["pruned"]
    await client.assert_nothing_more()


async def test_a_change_to_a_shown_or_filtered_through_table_is_pushed(
    make_client, superuser, db_call
):
    """A product's tags (a many-to-many table) changed by raw SQL: the product changed."""
    product = await db_call(factories.ProductFactory, name="tagged")
    tag = await db_call(factories.TagFactory)
    client = await following(make_client, superuser, db_call, product)
    through = Product.tags.through
    await db_call(through.objects.bulk_create, [through(product_id=product.pk, tag_id=tag.pk)])
    assert (await client.receive_push(f"{PRODUCT}.retrieve"))["data"]["tags"] == [tag.pk]
    await client.receive_push(f"{PRODUCT}.list")
    await client.assert_nothing_more()


class ShownCategoryBinding(SyncBinding):
    model = Product
    stream = "testapp.ProductWithCategory"
    fields = ["id", "name", "category__name"]
    permission_classes = [IsAuthenticated]


@override_bindings(ShownCategoryBinding)
async def test_a_raw_write_to_a_table_a_stream_shows_is_pushed_to_the_rows_showing_it(
    make_client, superuser, db_call
):
    product = await db_call(factories.ProductFactory, name="shown")
    client = await make_client(superuser)
    reply = await client.send_event("testapp.ProductWithCategory.retrieve", {"id": product.pk})
    assert reply["data"]["category__name"] == product.category.name

    await db_call(rename_category, product.category_id, "renamed")
    push = await client.receive_push("testapp.ProductWithCategory.retrieve")
    assert push["data"] == {"id": product.pk, "name": "shown", "category__name": "renamed"}
    await client.assert_nothing_more()


async def test_a_write_to_a_table_a_read_filters_through_reevaluates_it(
    make_client, superuser, db_call
):
    """A search of products by their category's name: renaming the category by raw SQL
    (a table the read joins through, not its own) puts the product on the page."""
    product = await db_call(factories.ProductFactory, name="striped")
    client = await make_client(superuser)
    page = await client.send_event(f"{PRODUCT}.search", {"query": "zebra"})
    assert page["data"]["count"] == 0

    await db_call(rename_category, product.category_id, "zebra")
    assert names(await client.receive_push(f"{PRODUCT}.search")) == ["striped"]
    await client.assert_nothing_more()


# -- installing the triggers, and the checks that say what is missing ----------------------


def _check_ids(errors):
    return [error.id for error in errors]


def test_migrate_installs_the_triggers_and_the_check_names_what_is_missing():
    from syncbind._capture import installed_on_migrate
    from syncbind._capture.triggers import missing, uninstall
    from syncbind.checks import check_capture_triggers

    assert missing("default") == []
    assert check_capture_triggers(databases=["default"]) == []
    uninstall("default")
    capture.forget()
    try:
        assert not capture.covers(Product)  # model signals announce its writes again
        absent = {table.name for table in missing("default")}
        assert {"testapp_product", "testapp_category", "testapp_product_tags"} <= absent
        [warning] = check_capture_triggers(databases=["default"])
        assert warning.id == "syncbind.W017" and "testapp_product" in warning.msg
        assert "manage.py migrate" in warning.hint
    finally:
        installed_on_migrate(using="default")  # what migrate's post_migrate does
    assert missing("default") == [] and capture.covers(Product)


def test_a_table_whose_columns_changed_gets_new_triggers(monkeypatch):
    """A trigger's name carries a digest of what it records: migrate replaces the stale."""
    from syncbind._capture import installed_on_migrate, tables, triggers

    before = triggers.installed("default")["testapp_product"]
    real = tables.table_of

    def fewer_columns(model):
        table = real(model)
        if table.name == "testapp_product":
            return tables.Table(table.name, table.pk, table.columns[:2], table.model)
        return table

    monkeypatch.setattr(tables, "table_of", fewer_columns)
    made = triggers.install("default")
    assert made == ["testapp_product"]
    after = triggers.installed("default")["testapp_product"]
    assert len(after) == 3 and after.isdisjoint(before)
    monkeypatch.setattr(tables, "table_of", real)
    installed_on_migrate(using="default")
    assert triggers.installed("default")["testapp_product"] == before


def test_capture_off_and_a_backend_without_capture_are_reported(settings, monkeypatch):
    from syncbind._capture import triggers
    from syncbind.checks import check_capture_backend

    assert check_capture_backend() == []
    settings.SYNCBIND = {"CAPTURE": False}
    assert _check_ids(check_capture_backend()) == ["syncbind.W016"]
    assert not capture.covers(Product)
    settings.SYNCBIND = {}
    monkeypatch.setattr(triggers, "supported", lambda alias: False)
    [warning] = check_capture_backend()
    assert warning.id == "syncbind.W018" and "QuerySet.update()" in warning.msg


async def test_a_write_of_more_rows_than_a_message_holds_evaluates_the_stream(
    make_client, superuser, db_call, settings
):
    """Past MAX_CHANGES_PER_MESSAGE records of one table, a read counts them instead of
    returning them: every key of the stream is evaluated again, as for a signal's batch."""
    settings.SYNCBIND = {"MAX_CHANGES_PER_MESSAGE": 2}
    first = await db_call(factories.ProductFactory, name="a")
    category = first.category
    for name in ("b", "c"):
        await db_call(factories.ProductFactory, name=name, category=category)
    client = await make_client(superuser)
    await client.send_event(f"{PRODUCT}.list", {"filters": {"category": category.pk}})
    await db_call(Product.objects.filter(category=category).update, stock=9)
    page = await client.receive_push(f"{PRODUCT}.list")
    assert [row["stock"] for row in page["data"]["rows"]] == [9, 9, 9]
    await client.assert_nothing_more()

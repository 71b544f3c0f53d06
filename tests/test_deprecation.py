"""Bindings written for 0.1 (hooks taking the request) keep working, with a warning."""

import pytest

from syncbind import SyncBinding
from syncbind.deprecation import RemovedInSyncbind03Warning
from syncbind.permissions import IsAuthenticated
from syncbind.testing import override_bindings
from tests import factories
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


def make_legacy_binding():
    class LegacyNoteBinding(SyncBinding):
        model = Note
        stream = "testapp.LegacyNote"
        fields = ["id", "text", "owner"]
        read_only_fields = ["owner"]
        permission_classes = [IsAuthenticated]

        def get_queryset(self, request=None):
            return super().get_queryset(request).filter(owner=request.user)

        def filter_queryset(self, request, queryset):
            return super().filter_queryset(request, queryset).exclude(text="hidden")

        def perform_create(self, request, write):
            return write.save(owner=request.user)

    return LegacyNoteBinding


def test_old_hook_signatures_warn_once_when_the_class_is_made():
    with pytest.warns(RemovedInSyncbind03Warning) as caught:
        make_legacy_binding()
    names = sorted(str(w.message).split("(")[0].rsplit(".", 1)[1] for w in caught)
    assert names == ["filter_queryset", "get_queryset", "perform_create"]
    assert "self.request" in str(caught[0].message)


def test_new_hook_signatures_do_not_warn(recwarn):
    class NewNoteBinding(SyncBinding):
        model = Note
        stream = "testapp.NewNote"
        fields = ["id", "text"]

        def get_queryset(self):
            return super().get_queryset().filter(owner=self.request.user)

        def filter_queryset(self, queryset):
            return super().filter_queryset(queryset)

        def perform_create(self, write):
            return write.save(owner=self.request.user)

    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


async def test_old_hook_signatures_still_scope_reads_and_writes(make_client, db_call):
    with pytest.warns(RemovedInSyncbind03Warning):
        binding = make_legacy_binding()
    alice, bob = await db_call(factories.UserFactory), await db_call(factories.UserFactory)
    await db_call(Note.objects.create, owner=alice, text="hidden")
    await db_call(Note.objects.create, owner=bob, text="bob's")
    with override_bindings(binding):
        client = await make_client(alice)
        created = await client.send_event("testapp.LegacyNote.create", {"text": "mine"})
        assert created["data"]["row"]["owner"] == alice.pk
        page = await client.send_event("testapp.LegacyNote.list", {})
        assert [row["text"] for row in page["data"]["rows"]] == ["mine"]


async def test_a_subclass_of_an_old_style_binding_can_call_super_the_old_way(make_client, db_call):
    with pytest.warns(RemovedInSyncbind03Warning):
        legacy = make_legacy_binding()

        class Narrower(legacy):
            stream = "testapp.NarrowerNote"

            def get_queryset(self, request=None):
                return super().get_queryset(request).exclude(text="skip")

    alice = await db_call(factories.UserFactory)
    for text in ("keep", "skip", "hidden"):
        await db_call(Note.objects.create, owner=alice, text=text)
    with override_bindings(Narrower):
        client = await make_client(alice)
        page = await client.send_event("testapp.NarrowerNote.list", {})
        assert [row["text"] for row in page["data"]["rows"]] == ["keep"]


def test_the_old_consumer_names_still_work_with_a_warning():
    import syncbind
    from syncbind import consumers

    with pytest.warns(RemovedInSyncbind03Warning, match="BindingConsumer"):
        assert syncbind.SyncConsumer is consumers.BindingConsumer
    with pytest.warns(RemovedInSyncbind03Warning, match="AsyncBindingConsumer"):
        assert consumers.AsyncConsumer is consumers.AsyncBindingConsumer


def test_filter_fields_is_read_as_filterset_fields_with_a_warning():
    with pytest.warns(RemovedInSyncbind03Warning, match="filterset_fields"):

        class OldFilters(SyncBinding):
            model = Note
            stream = "testapp.OldFilters"
            fields = ["id", "text"]
            filter_fields = ["text"]

    assert OldFilters.filterset_fields == ["text"]
    assert "text" in OldFilters().get_filterset_class().base_filters

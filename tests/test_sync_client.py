"""[syncbind/testing/sync.py] The synchronous test client in Django's TestCase and TransactionTestCase (issue 25, point 1).

Legacy sync projects test with ``django.test.TestCase`` and ``manage.py
test``. ``SyncClient`` drives the real consumer from such a test: its binding
code runs on the test's thread, in the test's transaction, and pushes follow
Django's on-commit callbacks there.
"""

import threading

import pytest
from asgiref.sync import AsyncToSync
from django.conf import settings
from django.db import transaction
from django.test import TestCase, TransactionTestCase

from syncbind import AsyncBindingConsumer, BindingConsumer
from syncbind.settings import api_settings
from syncbind.testing import SyncClient
from tests import factories
from tests.testapp.models import Note, Product

NOTE = "testapp.Note"
PRODUCT = "testapp.Product"


def note_texts(message):
    return [row["text"] for row in message["data"]["rows"]]


class InATestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.ada = factories.UserFactory(username="ada")
        cls.bob = factories.UserFactory(username="bob")
        cls.root = factories.SuperUserFactory(username="root")
        cls.trowel = factories.ProductFactory(name="Trowel", price="6.75")

    def test_a_write_is_pushed_when_on_commit_callbacks_run(self):
        watcher, writer, other = SyncClient(self.ada), SyncClient(self.ada), SyncClient(self.bob)
        assert note_texts(watcher.send_event(f"{NOTE}.list")) == []
        assert note_texts(other.send_event(f"{NOTE}.list")) == []
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            reply = writer.send_event(f"{NOTE}.create", {"text": "buy milk"})
        assert reply["data"]["success"] is True
        assert callbacks  # Django ran the write's on-commit work at the block's end
        assert note_texts(watcher.receive_push(f"{NOTE}.list")) == ["buy milk"]
        watcher.assert_nothing_more()
        other.assert_nothing_more()  # bob is never sent ada's notes
        for client in (watcher, writer, other):
            client.close()
        assert Note.objects.get().owner == self.ada

    def test_without_on_commit_callbacks_nothing_is_pushed(self):
        """As in any TestCase, the transaction never commits: its on-commit work runs only
        where the test asks for it."""
        with SyncClient(self.ada) as watcher, SyncClient(self.ada) as writer:
            watcher.send_event(f"{NOTE}.list")
            writer.send_event(f"{NOTE}.create", {"text": "never committed"})
            watcher.assert_nothing_more()
            # The row is there for the test and the consumer alike.
            assert note_texts(writer.send_event(f"{NOTE}.list")) == ["never committed"]

    def test_the_consumer_reads_the_tests_rows_and_pushes_its_saves(self):
        with SyncClient(self.root) as client:
            row = client.send_event(f"{PRODUCT}.retrieve", {"id": self.trowel.pk})["data"]
            assert row["name"] == "Trowel"
            with self.captureOnCommitCallbacks(execute=True):
                self.trowel.price = "7.25"
                self.trowel.save()
            push = client.receive_push(f"{PRODUCT}.retrieve")
            assert push["data"] == {**row, "price": "7.25"}
            client.settle()
            client.assert_nothing_more()

    def test_binding_code_runs_on_the_tests_thread(self):
        """One database connection, the test's: the binding's writes roll back with it."""
        test_thread = threading.current_thread()
        seen = []
        original = BindingConsumer.connect

        def connect(consumer):
            seen.append(threading.current_thread())
            original(consumer)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BindingConsumer, "connect", connect)
            with SyncClient(self.ada):
                pass
        assert seen == [test_thread]

    def test_a_session_cookie_is_read_in_the_tests_transaction(self):
        """AuthMiddlewareStack's database_sync_to_async runs on the test's thread too: the
        session row this test wrote is found."""
        from tests.asgi import application

        self.client.force_login(self.ada)
        session = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        cookie = f"{settings.SESSION_COOKIE_NAME}={session}".encode()
        client = SyncClient(application=application, headers=[(b"cookie", cookie)])
        reply = client.send_event(f"{NOTE}.create", {"text": "mine"})
        client.close()
        assert reply["data"]["success"] is True
        assert Note.objects.get().owner == self.ada

    def test_a_refused_handshake_raises_and_leaves_nothing_running(self):
        with pytest.raises(ConnectionRefusedError):
            SyncClient(None)
        assert not [t for t in threading.enumerate() if t.name == "syncbind-test-loop"]
        assert AsyncToSync.loop_thread_executors == {}
        assert api_settings.CAPTURE is True  # off only while a client is open
        with SyncClient(self.ada) as client:
            assert note_texts(client.send_event(f"{NOTE}.list")) == []

    def test_a_queryset_update_is_not_pushed_in_a_test_transaction(self):
        """update() sends no model signal, and change capture reads only committed
        records: such writes need a TransactionTestCase (below)."""
        with SyncClient(self.root) as client:
            client.send_event(f"{PRODUCT}.retrieve", {"id": self.trowel.pk})
            with self.captureOnCommitCallbacks(execute=True):
                Product.objects.filter(pk=self.trowel.pk).update(price="9.00")
            client.assert_nothing_more()


class InATransactionTestCase(TransactionTestCase):
    def setUp(self):
        self.ada = factories.UserFactory(username="ada")

    def test_a_write_is_pushed(self):
        with SyncClient(self.ada) as watcher, SyncClient(self.ada) as writer:
            assert note_texts(watcher.send_event(f"{NOTE}.list")) == []
            reply = writer.send_event(f"{NOTE}.create", {"text": "buy milk"})
            assert reply["data"]["success"] is True
            assert note_texts(watcher.receive_push(f"{NOTE}.list")) == ["buy milk"]
            watcher.assert_nothing_more()
        assert Note.objects.get().owner == self.ada

    def test_a_queryset_update_is_pushed(self):
        """Committed, so change capture records it as it would in production."""
        root = factories.SuperUserFactory(username="root")
        trowel = factories.ProductFactory(name="Trowel", price="6.75")
        with SyncClient(root) as client:
            row = client.send_event(f"{PRODUCT}.retrieve", {"id": trowel.pk})["data"]
            with transaction.atomic():
                Product.objects.filter(pk=trowel.pk).update(price="9.00")
            push = client.receive_push(f"{PRODUCT}.retrieve")
            assert push["data"] == {**row, "price": "9.00"}
            client.assert_nothing_more()


async def test_an_async_test_is_told_to_await_connect():
    with pytest.raises(RuntimeError, match=r"syncbind\.testing\.connect\(\)"):
        SyncClient(None)


def test_in_a_pytest_test_with_the_db_fixture(db, django_capture_on_commit_callbacks):
    """pytest-django's ``db`` is a TestCase's transaction: the same rules."""
    ada = factories.UserFactory(username="ada")
    with SyncClient(ada) as watcher, SyncClient(ada) as writer:
        watcher.send_event(f"{NOTE}.list")
        with django_capture_on_commit_callbacks(execute=True):
            writer.send_event(f"{NOTE}.create", {"text": "buy milk"})
        assert note_texts(watcher.receive_push(f"{NOTE}.list")) == ["buy milk"]
        watcher.assert_nothing_more()


class WithTheAsyncConsumer(TestCase):
    def test_its_pushes_follow_on_commit_callbacks_too(self):
        """AsyncBindingConsumer's sync parts run on the test's thread as well."""
        ada = factories.UserFactory(username="ada")
        app = AsyncBindingConsumer.as_asgi()
        with (
            SyncClient(ada, application=app) as watcher,
            SyncClient(ada, application=app) as writer,
        ):
            watcher.send_event(f"{NOTE}.list")
            with self.captureOnCommitCallbacks(execute=True):
                writer.send_event(f"{NOTE}.create", {"text": "buy milk"})
            assert note_texts(watcher.receive_push(f"{NOTE}.list")) == ["buy milk"]
            watcher.assert_nothing_more()

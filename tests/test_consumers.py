"""The consumers (syncbind/consumers.py): what they do per message beyond the core."""

import pytest

from syncbind import AsyncBindingConsumer, BindingConsumer
from syncbind.testing import connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channels_closes(monkeypatch):
    """Count Channels' per-message hop to close old connections on its shared thread."""
    calls = []

    async def counting():
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting)
    monkeypatch.setattr("syncbind.consumers.aclose_old_connections", counting)
    return calls


async def test_the_sync_consumer_skips_channels_per_message_close(superuser, channels_closes):
    # Its handlers run in syncbind's workers, which close their own connections.
    async with connect(superuser, application=BindingConsumer.as_asgi()) as client:
        for _ in range(3):
            assert "data" in await client.send_event("testapp.Product.ping")
    assert channels_closes == []


async def test_a_consumer_with_events_on_the_loop_makes_it_only_for_those(
    superuser, channels_closes
):
    # async def events run on the loop and may use Django's async ORM (Channels'
    # thread), and so may AsyncBindingConsumer's connect(): those get the hop first.
    async with connect(superuser, application=AsyncBindingConsumer.as_asgi()) as client:
        assert len(channels_closes) == 1  # the connect
        for _ in range(3):
            assert "data" in await client.send_event("testapp.Product.ping")
        assert len(channels_closes) == 1  # sync events run in the workers
        reply = await client.send_event("testapp.Product.async_echo", {"x": 1})
        assert "data" in reply
        assert len(channels_closes) == 2


def test_the_pre_release_consumer_names_are_gone():
    # syncbind was never released under them: no alias, no warning, an import error.
    import syncbind
    from syncbind import consumers

    with pytest.raises(ImportError, match="SyncConsumer"):
        from syncbind import SyncConsumer  # noqa: F401
    with pytest.raises(AttributeError, match="AsyncConsumer"):
        syncbind.AsyncConsumer  # noqa: B018
    assert not hasattr(consumers, "SyncConsumer")
    assert not hasattr(consumers, "AsyncConsumer")

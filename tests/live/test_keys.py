"""syncbind/_live/keys.py: subscription keys, a key's state in the hub, and group names.

Marked ``unit``: no database, no server. A compiled read is
stood in for by an object with a ``queryset`` (built, never evaluated).
"""

import dataclasses
import weakref
from types import SimpleNamespace

import pytest

from syncbind._live.keys import (
    CONNECTIONS_GROUP,
    INSTANCE,
    PAGE,
    KeyState,
    SubscriptionKey,
    group_name,
)
from tests.testapp.models import Product

pytestmark = pytest.mark.unit


def page_key(**changes):
    fields = {"stream": "testapp.Product", "kind": PAGE, "pk": None, "read": ("list", "sql", 1)}
    return SubscriptionKey(**{**fields, **changes})


def instance_key():
    return SubscriptionKey("testapp.Product", INSTANCE, 3, ("sql", 3))


def test_equal_keys_are_one_key():
    assert page_key() == page_key()
    assert hash(page_key()) == hash(page_key())
    assert len({page_key(), page_key(), page_key(scope=None)}) == 1
    assert page_key().scope is None
    assert page_key().shape is None


@pytest.mark.parametrize(
    "changes",
    [
        {"stream": "testapp.Note"},
        {"kind": INSTANCE},
        {"pk": 1},
        {"read": ("list", "sql", 2)},
        {"scope": ("team", 1)},
        {"shape": ("serializer", ("id", "name", "price"))},
    ],
)
def test_keys_differing_in_any_part_are_different(changes):
    assert page_key(**changes) != page_key()


def test_keys_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        page_key().pk = 3


def test_a_state_without_a_compiled_read_has_no_predicate():
    state = KeyState(page_key(), object, None)
    assert (state.read, state.predicate, state.page, state.version) == (None, None, None, 0)
    assert state.subs == {} and state.pks == set()


def test_a_state_compiles_its_reads_where_clause():
    read = SimpleNamespace(queryset=Product.objects.filter(owner_id=5))
    state = KeyState(page_key(), object, read)
    assert state.read is read
    assert state.predicate({"owner_id": 5}) is True
    assert state.predicate({"owner_id": 6}) is False


def test_states_can_be_weakly_referenced_and_take_no_other_attributes():
    state = KeyState(page_key(), object, None)
    assert weakref.ref(state)() is state
    with pytest.raises(AttributeError):
        state.extra = 1


PAGE_DATA = {"page": 1, "limit": 2, "count": 5, "rows": [{"id": 1}, {"id": 2}]}


def test_a_page_remembers_its_rows_and_the_page_it_was_shown():
    state = KeyState(page_key(), object, None)
    state.saw(iter([1, 2]), PAGE_DATA, version=0)
    assert state.pks == {1, 2}
    assert state.page == (5, PAGE_DATA["rows"], [1, 2])


def test_a_reply_read_before_an_evaluation_adds_its_rows_but_not_its_page():
    state = KeyState(page_key(), object, None)
    state.version = 2
    state.saw([7], {"count": 1, "rows": [{"id": 7}]}, version=1)
    assert state.pks == {7}
    assert state.page is None


def test_row_keys_from_several_replies_accumulate():
    state = KeyState(page_key(), object, None)
    state.saw([1, 2], PAGE_DATA, version=0)
    state.saw([2, 3], {"count": 6, "rows": [{"id": 2}, {"id": 3}]}, version=0)
    assert state.pks == {1, 2, 3}
    assert state.page == (6, [{"id": 2}, {"id": 3}], [2, 3])


def test_a_kept_page_counts_its_encoded_size():
    """What MAX_SUBSCRIPTION_BYTES counts: the size of the page a key keeps, and
    only while that page is the one kept."""
    state = KeyState(page_key(), object, None)
    assert state.size == 0
    state.saw([1, 2], PAGE_DATA, version=0, size=72)
    assert state.size == 72
    state.saw([7], {"count": 1, "rows": [{"id": 7}]}, version=1, size=5000)  # stale reply
    assert (state.page, state.size) == ((5, PAGE_DATA["rows"], [1, 2]), 72)
    state.keep_page(1, [{"id": 7}], [7], 40)  # an evaluation's page
    assert (state.page, state.size) == ((1, [{"id": 7}], [7]), 40)
    row_state = KeyState(instance_key(), object, None)
    row_state.saw([3], PAGE_DATA, version=0, size=72)
    assert row_state.size == 0


def test_a_page_read_before_the_kept_one_is_never_kept_over_it():
    """Evaluations of one key keep their pages from several threads (a refresh job reads
    a key alone beside the stream's evaluations): the page read last is kept, whichever
    finishes last, and an older one only adds its rows to those a change re-evaluates."""
    state = KeyState(page_key(), object, None)
    older, newer = state.ticket(), state.ticket()
    assert state.keep_read(newer, 1, [{"id": 7}], [7], 40)
    assert not state.keep_read(older, 2, [{"id": 6}, {"id": 7}], [6, 7], 80)
    assert (state.page, state.size, state.version) == ((1, [{"id": 7}], [7]), 40, 1)
    assert state.pks == {6, 7}
    assert state.keep_read(state.ticket(), 0, [], [], 30)
    assert (state.page, state.pks, state.version) == ((0, [], []), set(), 2)


@pytest.mark.parametrize("data", [None, [], {"rows": "not a list"}, {"count": 1}, "x"])
def test_data_that_is_not_a_page_keeps_only_the_row_keys(data):
    state = KeyState(page_key(), object, None)
    state.saw([4], data, version=0)
    assert state.pks == {4}
    assert state.page is None


def test_an_instance_key_remembers_nothing():
    state = KeyState(instance_key(), object, None)
    state.saw([3], PAGE_DATA, version=0)
    assert state.pks == set()
    assert state.page is None


def test_group_names():
    assert group_name("testapp.Product") == "syncbind.testapp.Product"
    assert CONNECTIONS_GROUP == "syncbind.connections"

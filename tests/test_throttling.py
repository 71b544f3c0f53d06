"""syncbind/throttling.py: the RATE_LIMIT setting and the per-connection token bucket.

Marked ``unit``: no database, no server; time is a fake clock.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncbind.throttling import RateLimit, parse_rate

pytestmark = pytest.mark.unit

FAST = settings(database=None, deadline=None, max_examples=150)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("100/s", (100, 1.0)),
        ("600/m", (600, 60.0)),
        ("10000/h", (10000, 3600.0)),
        ("6/min", (6, 60.0)),  # only the unit's first letter counts
        ("5/second", (5, 1.0)),
        ("2/hour", (2, 3600.0)),
        ("3/S", (3, 1.0)),
        ("3/ m ", (3, 60.0)),
        (" 7 /s", (7, 1.0)),
    ],
)
def test_parse_rate(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize(
    "rate",
    ["lots", "", "100", "/s", "100/", "100/ ", "100/d", "1.5/s", "1e3/s", "1/2/s", "x/s"]
    + ["0/s", "-5/s"],  # a bucket that never fills would refuse every message
)
def test_a_rate_that_cannot_be_read_is_refused_by_name(rate):
    with pytest.raises(ValueError) as info:
        parse_rate(rate)
    assert str(info.value) == f"Invalid RATE_LIMIT {rate!r}: use '<count>/<s|m|h>'."


@pytest.mark.parametrize("rate", [None, ""])
def test_no_rate_is_no_limit(rate):
    assert RateLimit.from_setting(rate) is None


def test_from_setting_makes_a_full_bucket():
    bucket = RateLimit.from_setting("3/m")
    assert (bucket.capacity, bucket.tokens, bucket.refill) == (3.0, 3.0, 3 / 60.0)


def test_a_burst_up_to_the_count_then_refusals():
    clock = Clock()
    bucket = RateLimit(3, 1.0, clock=clock)
    assert [bucket.allow() for _ in range(5)] == [True, True, True, False, False]


def test_tokens_come_back_at_the_rate():
    clock = Clock()
    bucket = RateLimit(2, 1.0, clock=clock)  # one token every half second
    assert bucket.allow() and bucket.allow()
    assert not bucket.allow()
    clock.now += 0.25
    assert not bucket.allow()
    clock.now += 0.25
    assert bucket.allow()
    assert not bucket.allow()


def test_an_idle_connection_saves_no_more_than_one_burst():
    clock = Clock()
    bucket = RateLimit(2, 1.0, clock=clock)
    clock.now += 3600
    assert [bucket.allow() for _ in range(4)] == [True, True, False, False]


def test_refused_messages_do_not_use_tokens():
    clock = Clock()
    bucket = RateLimit(1, 10.0, clock=clock)
    assert bucket.allow()
    for _ in range(5):
        clock.now += 1
        assert not bucket.allow()
    clock.now += 5  # 10 seconds since the first message
    assert bucket.allow()


@FAST
@given(
    count=st.integers(1, 50),
    period=st.sampled_from([1.0, 60.0, 3600.0]),
    gaps=st.lists(st.floats(0, 100), max_size=60),
)
def test_never_more_than_the_burst_plus_the_refill(count, period, gaps):
    clock = Clock()
    bucket = RateLimit(count, period, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += bucket.allow()
        assert 0 <= bucket.tokens <= count
    elapsed = clock.now - 1000.0
    assert allowed <= count + elapsed * count / period + 1e-6

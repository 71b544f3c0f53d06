"""syncbind/pagination.py: reading and validating ``page`` and ``limit``.

Marked ``unit``: no database, no server.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncbind.exceptions import ValidationError
from syncbind.pagination import MAX_PAGE, PageParams, parse_page_params

pytestmark = pytest.mark.unit

# Explicit alphabets: st.text()'s default writes a codec cache to .hypothesis/.
CHARS = st.characters(blacklist_categories=("Cs",))
FAST = settings(database=None, deadline=None, max_examples=100)

POSITIVE = "Must be a positive integer."
AT_MOST_PAGE = f"Must be at most {MAX_PAGE}."


def params(data, default_limit=25, max_limit=100):
    return parse_page_params(data, default_limit, max_limit)


def refused(data, default_limit=25, max_limit=100):
    with pytest.raises(ValidationError) as info:
        params(data, default_limit, max_limit)
    error = info.value.as_error()
    assert error["code"] == "invalid"
    assert error["message"] == "Invalid data."
    return error["fields"]


@pytest.mark.parametrize(
    ("data", "default_limit", "max_limit", "expected"),
    [
        ({}, 25, 100, PageParams(page=1, limit=25)),
        ({}, 500, 100, PageParams(page=1, limit=100)),  # the default is capped too
        ({"page": 3}, 25, 100, PageParams(page=3, limit=25)),
        ({"limit": 7}, 25, 100, PageParams(page=1, limit=7)),
        ({"limit": 100}, 25, 100, PageParams(page=1, limit=100)),
        ({"limit": 101}, 25, 100, PageParams(page=1, limit=100)),
        ({"limit": 10**30}, 25, 100, PageParams(page=1, limit=100)),
        ({"page": MAX_PAGE}, 25, 100, PageParams(page=MAX_PAGE, limit=25)),
        ({"page": "2", "limit": "10"}, 25, 100, PageParams(page=2, limit=10)),
        ({"page": "007"}, 25, 100, PageParams(page=7, limit=25)),
        ({"limit": "9" * 18}, 25, 100, PageParams(page=1, limit=100)),
        ({"page": 1, "other": "ignored"}, 25, 100, PageParams(page=1, limit=25)),
    ],
)
def test_page_params(data, default_limit, max_limit, expected):
    assert params(data, default_limit, max_limit) == expected


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        "0",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.0",
        "1e3",
        "",
        "0x10",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, but not an ASCII one
        "\u00b2",  # SUPERSCRIPT TWO: isdigit() is true
        "\uff11",  # FULLWIDTH DIGIT ONE
        "1" * 19,  # longer than 18 characters: never converted
        "1" * 5000,
        "0" * 18,
        1.0,
        1.5,
        True,
        False,
        None,
        [1],
        {"n": 1},
    ],
)
@pytest.mark.parametrize("name", ["page", "limit"])
def test_values_that_are_not_positive_integers_are_invalid(name, value):
    assert refused({name: value}) == {name: [POSITIVE]}


@pytest.mark.parametrize("value", [MAX_PAGE + 1, 10**15, str(MAX_PAGE + 1), "9" * 18])
def test_a_page_past_max_page_is_invalid(value):
    assert refused({"page": value}) == {"page": [AT_MOST_PAGE]}


def test_page_is_checked_before_limit():
    assert refused({"page": 0, "limit": 0}) == {"page": [POSITIVE]}
    assert refused({"page": 1, "limit": 0}) == {"limit": [POSITIVE]}


def test_a_bad_default_limit_is_refused_as_limit():
    assert refused({}, default_limit=0) == {"limit": [POSITIVE]}


@FAST
@given(
    page=st.integers(1, MAX_PAGE),
    limit=st.integers(1, 10**18 - 1),  # 18 digits: the longest text converted
    max_limit=st.integers(1, 1000),
    as_text=st.booleans(),
)
def test_positive_integers_as_numbers_or_digits(page, limit, max_limit, as_text):
    data = {"page": str(page), "limit": str(limit)} if as_text else {"page": page, "limit": limit}
    assert params(data, 25, max_limit) == PageParams(page=page, limit=min(limit, max_limit))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CHARS, max_size=20),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.text(CHARS, max_size=5), children, max_size=2)
    ),
    max_leaves=5,
)


@FAST
@given(page=JSON_VALUES, limit=JSON_VALUES)
def test_anything_else_is_a_validation_error_never_a_crash(page, limit):
    try:
        result = params({"page": page, "limit": limit})
    except ValidationError as exc:
        [(name, messages)] = exc.fields.items()
        assert name in {"page", "limit"}
        assert messages in ([POSITIVE], [AT_MOST_PAGE])
    else:
        assert 1 <= result.page <= MAX_PAGE
        assert 1 <= result.limit <= 100
        assert isinstance(result.page, int) and not isinstance(result.page, bool)

"""syncbind/_live/matching.py: a queryset's WHERE clause as a three-valued Python predicate.

Marked ``unit``: no database, no server. Querysets of the test
app's models are built (and their WHERE trees compiled) but never evaluated.
"""

import operator
import uuid
from functools import reduce

import pytest
from django.db.models import Count, F, Q
from hypothesis import given, settings
from hypothesis import strategies as st

from syncbind._live.matching import (
    ABSENT,
    SAME,
    UNKNOWN,
    compile_predicate,
    matchable_fields,
    may_contain,
    normalizer,
)
from tests.testapp.models import Category, Product, Task, User

pytestmark = pytest.mark.unit

FAST = settings(database=None, deadline=None, max_examples=100)

U1 = uuid.UUID("12345678-1234-5678-1234-567812345678")
U2 = uuid.UUID("87654321-4321-8765-4321-876543218765")


def predicate(queryset):
    return compile_predicate(queryset)


def answers(queryset, *rows):
    match = compile_predicate(queryset)
    return [match(row) for row in rows]


products = Product.objects


# -- which columns are matched -------------------------------------------------------


def test_matchable_fields_are_the_integer_boolean_and_uuid_columns():
    assert set(matchable_fields(Product)) == {
        "id",
        "category_id",
        "owner_id",
        "in_stock",
        "stock",
        "sku",
    }
    assert set(matchable_fields(Task)) == {"id", "owner_id", "project_id", "priority", "done"}


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (Product, "name"),  # text
        (Product, "status"),
        (Product, "price"),  # decimal
        (Product, "created"),  # datetime
        (Product, "tags"),  # many-to-many
        (Category, "products"),  # a reverse foreign key
        (Task, "meta"),  # JSON
        (Task, "labels"),
    ],
)
def test_other_fields_have_no_normalizer(model, name):
    assert normalizer(model._meta.get_field(name)) is None


def test_normalizers_compare_values_as_the_column_stores_them():
    as_int = normalizer(Product._meta.get_field("owner"))  # the user's integer key
    assert as_int("5") == 5 and as_int(5) == 5
    with pytest.raises(ValueError):
        as_int(True)
    as_bool = normalizer(Product._meta.get_field("in_stock"))
    assert (as_bool(True), as_bool(0), as_bool(1)) == (True, False, True)
    with pytest.raises(ValueError):
        as_bool(2)
    as_uuid = normalizer(Product._meta.get_field("sku"))
    assert as_uuid(str(U1)) == U1 and as_uuid(U1) is U1


# -- compile_predicate ---------------------------------------------------------------


def test_no_where_clause_matches_every_row():
    assert answers(products.all(), {}, {"owner_id": 5}) == [True, True]


@pytest.mark.parametrize(
    ("row", "answer"),
    [
        ({"owner_id": 5}, True),
        ({"owner_id": 6}, False),
        ({"owner_id": "5"}, True),  # compared as the column's type
        ({"owner_id": None}, None),  # SQL NULL: no comparison matches, answered unknown
        ({}, None),  # not known
        ({"owner_id": True}, None),  # a boolean is not an integer key
        ({"owner_id": "five"}, None),
        ({"owner_id": 5, "name": "anything"}, True),
    ],
)
def test_an_equality_on_an_own_column(row, answer):
    assert predicate(products.filter(owner_id=5))(row) is answer


def test_a_model_instance_matches_by_its_primary_key():
    assert answers(products.filter(owner=User(pk=5)), {"owner_id": 5}, {"owner_id": 6}) == [
        True,
        False,
    ]
    assert answers(products.filter(owner__in=[User(pk=2)]), {"owner_id": 2}) == [True]


def test_a_join_the_orm_trims_is_still_an_own_column():
    assert answers(products.filter(category__id=5), {"category_id": 5}, {"category_id": 6}) == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    "queryset",
    [
        pytest.param(products.filter(name="x"), id="text column"),
        pytest.param(products.filter(price=1), id="decimal column"),
        pytest.param(products.filter(category__name="x"), id="join"),
        pytest.param(products.filter(stock=F("id")), id="column expression"),
        pytest.param(products.filter(stock__gt=F("id") + 1), id="arithmetic expression"),
        pytest.param(products.filter(stock__range=(1, 3)), id="range lookup"),
        pytest.param(products.filter(created__year=2020), id="transform"),
        pytest.param(products.filter(sku__gt=U1), id="uuid ordering"),
        pytest.param(products.filter(in_stock__gt=False), id="boolean ordering"),
        pytest.param(
            products.filter(category_id__in=Category.objects.filter(name="x")), id="subquery"
        ),
        pytest.param(products.annotate(n=Count("tags")).filter(n__gt=1), id="aggregate"),
        pytest.param(products.filter(Q(owner_id=1) ^ Q(stock=2)), id="xor"),
        pytest.param(Task.objects.filter(project__owner_id=3), id="another table's column"),
    ],
)
def test_what_is_not_understood_is_unknown(queryset):
    row = {"id": 1, "stock": 2, "owner_id": 1, "category_id": 1, "in_stock": True, "sku": U2}
    row.update({"project_id": 3, "priority": 0, "done": False, "name": "x", "price": 1})
    assert predicate(queryset)(row) is None


@pytest.mark.parametrize(
    ("lookup", "bound", "row_value", "answer"),
    [
        ("gt", 3, 4, True),
        ("gt", 3, 3, False),
        ("gte", 3, 3, True),
        ("gte", 3, 2, False),
        ("lt", 3, 2, True),
        ("lt", 3, 3, False),
        ("lte", 3, 3, True),
        ("lte", 3, 4, False),
        ("gt", 3, "4", True),
        ("gt", 3, None, None),
        # IntegerField lookups round a float bound the way the SQL compares it.
        ("gt", 3.5, 3, False),
        ("gt", 3.5, 4, True),
        ("gte", 3.5, 3, False),
        ("gte", 3.5, 4, True),
        ("lt", 3.5, 3, True),
        ("lt", 3.5, 4, False),
        # Out of the 64-bit range: no row equals or exceeds it, every row is below it.
        ("exact", 2**70, 3, False),
        ("gt", 2**70, 3, False),
        ("lt", 2**70, 3, True),
    ],
)
def test_integer_comparisons(lookup, bound, row_value, answer):
    queryset = products.filter(**{f"stock__{lookup}": bound})
    assert predicate(queryset)({"stock": row_value}) is answer


@pytest.mark.parametrize(
    ("value", "answer"),
    [(True, True), (1, True), (False, False), (0, False), (2, None), ("yes", None), (None, None)],
)
def test_a_boolean_column(value, answer):
    assert predicate(products.filter(in_stock=True))({"in_stock": value}) is answer


@pytest.mark.parametrize(
    ("value", "answer"),
    [(U1, True), (str(U1), True), (U1.hex, True), (U2, False), ("not-a-uuid", None)],
)
def test_a_uuid_column(value, answer):
    assert predicate(products.filter(sku=U1))({"sku": value}) is answer


def test_in_matches_any_listed_value():
    match = predicate(products.filter(owner_id__in=[1, 2]))
    assert [match({"owner_id": n}) for n in (1, 2, 3)] == [True, True, False]
    assert predicate(products.filter(sku__in=[U1]))({"sku": str(U1)}) is True
    # NULL in the list matches nothing, and a NULL row is unknown.
    match = predicate(products.filter(owner_id__in=[1, None]))
    assert (match({"owner_id": 1}), match({"owner_id": 3}), match({"owner_id": None})) == (
        True,
        False,
        None,
    )


def test_an_empty_in_and_none_match_nothing():
    assert predicate(products.filter(pk__in=[]))({"id": 1}) is False
    assert predicate(products.none())({}) is False
    assert predicate(products.filter(owner_id=1).none())({"owner_id": 1}) is False


@pytest.mark.parametrize(
    ("isnull", "row", "answer"),
    [
        (True, {"owner_id": None}, True),
        (True, {"owner_id": 3}, False),
        (True, {}, None),
        (False, {"owner_id": None}, False),
        (False, {"owner_id": 3}, True),
    ],
)
def test_isnull(isnull, row, answer):
    assert predicate(products.filter(owner__isnull=isnull))(row) is answer
    assert predicate(products.filter(owner=None))({"owner_id": None}) is True


def test_and_is_false_if_any_part_is_false_and_unknown_if_any_is_unknown():
    match = predicate(products.filter(owner_id=5, name="x"))
    assert match({"owner_id": 6, "name": "x"}) is False
    assert match({"owner_id": 5, "name": "x"}) is None
    chained = predicate(products.filter(owner_id=5).filter(stock__gt=0))
    assert chained({"owner_id": 5, "stock": 1}) is True
    assert chained({"owner_id": 5, "stock": 0}) is False


def test_or_is_true_if_any_part_is_true_and_unknown_if_any_is_unknown():
    match = predicate(products.filter(Q(owner_id=5) | Q(name="x")))
    assert match({"owner_id": 5}) is True
    assert match({"owner_id": 6}) is None
    match = predicate(products.filter(Q(owner_id=5) | Q(owner_id=6)))
    assert [match({"owner_id": n}) for n in (5, 6, 7)] == [True, True, False]


def test_exclude_keeps_null_rows_as_sql_does():
    match = predicate(products.exclude(owner_id=5))
    assert match({"owner_id": 5}) is False
    assert match({"owner_id": 6}) is True
    assert match({"owner_id": None}) is True  # NOT (owner_id = 5 AND owner_id IS NOT NULL)
    assert match({}) is None
    assert predicate(products.exclude(name="x"))({"name": "y"}) is None  # NOT unknown


def test_negating_a_non_null_column():
    match = predicate(products.filter(~Q(stock=3)))
    assert (match({"stock": 3}), match({"stock": 4}), match({})) == (False, True, None)


def test_a_tasks_owner_page():
    match = predicate(Task.objects.filter(owner_id=7, done=False, priority__gte=2))
    assert match({"owner_id": 7, "done": False, "priority": 2}) is True
    assert match({"owner_id": 7, "done": True, "priority": 2}) is False
    assert match({"owner_id": 8, "done": False, "priority": 9}) is False


# A formula over the understood columns, built both as a Q and as a Python function.
INTS = st.integers(-3, 3)
COMPARE = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def leaf(field, lookup, value):
    if lookup == "in":
        return Q(**{f"{field}__in": value}), lambda row: row[field] in value
    return Q(**{f"{field}__{lookup}": value}), lambda row: COMPARE[lookup](row[field], value)


KNOWN_LEAVES = st.one_of(
    st.builds(
        leaf, st.sampled_from(["id", "stock", "owner_id"]), st.sampled_from(sorted(COMPARE)), INTS
    ),
    st.builds(
        leaf, st.sampled_from(["stock", "owner_id"]), st.just("in"), st.lists(INTS, max_size=3)
    ),
    st.builds(leaf, st.just("in_stock"), st.just("exact"), st.booleans()),
)
TEXT_LEAVES = st.builds(leaf, st.just("name"), st.just("exact"), st.sampled_from(["x", "y"]))


def combine(children):
    def both(kind, pair):
        (q1, f1), (q2, f2) = pair
        if kind == "and":
            return q1 & q2, lambda row: f1(row) and f2(row)
        return q1 | q2, lambda row: f1(row) or f2(row)

    def negate(child):
        q, f = child
        return ~q, lambda row: not f(row)

    pairs = st.tuples(children, children)
    return (
        st.builds(both, st.sampled_from(["and", "or"]), pairs)
        | st.builds(negate, children)
        | st.builds(
            lambda parts: reduce(lambda a, b: both("and", (a, b)), parts),
            st.lists(children, min_size=1, max_size=3),
        )
    )


ROWS = st.fixed_dictionaries(
    {
        "id": INTS,
        "stock": INTS,
        "owner_id": INTS,
        "in_stock": st.booleans(),
        "name": st.sampled_from(["x", "y", "z"]),
    }
)


@FAST
@given(formula=st.recursive(KNOWN_LEAVES, combine, max_leaves=8), row=ROWS)
def test_a_formula_over_known_columns_is_decided_exactly(formula, row):
    q, truth = formula
    assert predicate(products.filter(q))(row) is truth(row)


@FAST
@given(formula=st.recursive(KNOWN_LEAVES | TEXT_LEAVES, combine, max_leaves=8), row=ROWS)
def test_an_answer_is_never_wrong_only_sometimes_unknown(formula, row):
    q, truth = formula
    assert predicate(products.filter(q))(row) in (None, truth(row))


# -- may_contain ---------------------------------------------------------------------

OWNER_5 = compile_predicate(products.filter(owner_id=5))


@pytest.mark.parametrize(
    ("before", "after", "answer"),
    [
        (ABSENT, {"owner_id": 5}, True),  # created into the queryset
        (ABSENT, {"owner_id": 6}, False),  # created elsewhere
        ({"owner_id": 5}, ABSENT, True),  # deleted from it
        ({"owner_id": 6}, ABSENT, False),
        ({"owner_id": 6}, {"owner_id": 5}, True),  # moved in
        ({"owner_id": 5}, {"owner_id": 6}, True),  # moved out
        ({"owner_id": 6}, {"owner_id": 7}, False),
        ({"owner_id": 5}, {"owner_id": 5}, True),
        (UNKNOWN, {"owner_id": 6}, True),
        ({"owner_id": 6}, UNKNOWN, True),
        (SAME, {"owner_id": 5}, True),  # a many-to-many change of a row in it
        (SAME, {"owner_id": 6}, False),
        (SAME, UNKNOWN, True),
        (ABSENT, ABSENT, False),
        ({}, {"owner_id": 6}, True),  # values not known: may be
    ],
)
def test_may_contain(before, after, answer):
    assert may_contain(OWNER_5, before, after) is answer


def test_an_unknown_predicate_may_contain_any_row():
    match = compile_predicate(products.filter(name="x"))
    assert may_contain(match, {"owner_id": 6}, {"owner_id": 7}) is True
    assert may_contain(match, ABSENT, ABSENT) is False


def test_markers_name_themselves():
    assert [repr(marker) for marker in (ABSENT, UNKNOWN, SAME)] == ["ABSENT", "UNKNOWN", "SAME"]

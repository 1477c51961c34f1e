"""One behaviour suite for every DocumentStore backend (structured like pyiceberg's catalog behaviours).

Add a backend by adding a factory to ``_STORE_FACTORIES``; every test then runs against it too.
DynamoDB runs against moto in server mode (no AWS account is reachable here): a fresh table per test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abasto.errors import InvalidInputError
from abasto.sources.behavior import (
    Document,
    DocumentStore,
    DynamoDocumentStore,
    PostgresDocumentStore,
    load_visit_analyses,
)
from abasto.stream.kinesis_aws import AwsConnection

pytestmark = pytest.mark.services

StoreFactory = Callable[[], DocumentStore]

_schemas = itertools.count(1)


def _postgres(request: pytest.FixtureRequest) -> StoreFactory:
    dsn: str = request.getfixturevalue("db_dsn")
    schema = f"behavior_conf_{next(_schemas)}"  # every test starts from an empty table
    return lambda: PostgresDocumentStore(dsn, schema=schema)


def _dynamodb(request: pytest.FixtureRequest) -> StoreFactory:
    conn: AwsConnection = request.getfixturevalue("moto_dynamodb")
    table = f"behavior-conf-{next(_schemas)}"  # every test starts from an empty table
    return lambda: DynamoDocumentStore(table, conn)


_STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], StoreFactory]] = {
    "postgres": _postgres,
    "dynamodb": _dynamodb,
}


@pytest.fixture(params=list(_STORE_FACTORIES))
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    return _STORE_FACTORIES[request.param](request)


@pytest.fixture
def store(store_factory: StoreFactory) -> Iterator[DocumentStore]:
    with store_factory() as s:
        yield s


VISIT = {
    "shelf_share": 0.42,
    "cooler": {"state": "ok", "door_seal": True, "temp_c": 4.5},
    "stock": {"COLA-600-NR": 5, "COLA-2L-R": 0},
    "expected_order": [{"sku": "COLA-600-NR", "cases": 2}],
    "notes": "Dueño pide más Cola 600 — promoción en la esquina",
    "competitor": None,
}


def test_put_then_get_round_trips(store: DocumentStore) -> None:
    store.put("STORE#S0001", "VISIT#2026-10-01#REP03", VISIT)
    assert store.get("STORE#S0001", "VISIT#2026-10-01#REP03") == VISIT


def test_get_missing_is_none(store: DocumentStore) -> None:
    assert store.get("STORE#NOPE", "VISIT#x") is None
    store.put("STORE#S0001", "A", {"a": 1})
    assert store.get("STORE#S0001", "B") is None
    assert store.get("STORE#S0002", "A") is None


def test_put_replaces_the_whole_document(store: DocumentStore) -> None:
    store.put("P", "S", {"a": 1, "b": 2})
    store.put("P", "S", {"c": 3})
    assert store.get("P", "S") == {"c": 3}


def test_query_returns_one_partition_in_byte_order(store: DocumentStore) -> None:
    keys = ["b", "B", "a", "é", "Z", "a#2", "a#10", "~"]
    for sk in keys:
        store.put("P1", sk, {"sk": sk})
    store.put("P2", "a", {"other": True})
    got = store.query("P1")
    assert [d.sk for d in got] == sorted(keys, key=lambda k: k.encode())
    assert all(d.pk == "P1" and d.doc == {"sk": d.sk} for d in got)
    assert store.query("P3") == []


def test_query_by_prefix_is_literal(store: DocumentStore) -> None:
    for sk in ["VISIT#2026-10-01", "VISIT#2026-10-02", "VISIT_2026", "VISITOR", "ORDER#1", "VISIT%X"]:
        store.put("STORE#S1", sk, {"sk": sk})
    assert [d.sk for d in store.query("STORE#S1", "VISIT#")] == ["VISIT#2026-10-01", "VISIT#2026-10-02"]
    assert [d.sk for d in store.query("STORE#S1", "VISIT%")] == ["VISIT%X"]
    assert [d.sk for d in store.query("STORE#S1", "VISIT_")] == ["VISIT_2026"]
    assert store.query("STORE#S1", "NOPE") == []


def test_query_limit_and_descending(store: DocumentStore) -> None:
    for day in range(1, 6):
        store.put("STORE#S1", f"VISIT#2026-10-0{day}", {"day": day})
    latest = store.query("STORE#S1", "VISIT#", limit=2, descending=True)
    assert [d.doc["day"] for d in latest] == [5, 4]
    assert [d.doc["day"] for d in store.query("STORE#S1", limit=1)] == [1]
    with pytest.raises(InvalidInputError):
        store.query("STORE#S1", limit=0)


def test_delete(store: DocumentStore) -> None:
    store.put("P", "S1", {"x": 1})
    store.put("P", "S2", {"x": 2})
    assert store.delete("P", "S1") is True
    assert store.get("P", "S1") is None
    assert store.delete("P", "S1") is False
    assert [d.sk for d in store.query("P")] == ["S2"]


def test_put_many_last_item_wins(store: DocumentStore) -> None:
    items = [Document("P", f"S{i}", {"i": i}) for i in range(50)]
    items.append(Document("P", "S0", {"i": "replaced"}))
    assert store.put_many(items) == 50
    assert store.get("P", "S0") == {"i": "replaced"}
    assert len(store.query("P")) == 50
    assert store.put_many([]) == 0


def test_put_many_with_an_invalid_item_writes_nothing(store: DocumentStore) -> None:
    items = [Document("P", "ok", {"a": 1}), Document("P", "", {"a": 2})]
    with pytest.raises(InvalidInputError):
        store.put_many(items)
    assert store.query("P") == []


@pytest.mark.parametrize(
    ("pk", "sk"),
    [("", "s"), ("p", ""), ("p\x00", "s"), ("x" * 2049, "s"), ("p", "y" * 1025), (1, "s"), ("p", None)],
    ids=["empty-pk", "empty-sk", "nul", "long-pk", "long-sk", "int-pk", "none-sk"],
)
def test_invalid_keys_are_refused(store: DocumentStore, pk: Any, sk: Any) -> None:
    with pytest.raises(InvalidInputError):
        store.put(pk, sk, {"a": 1})
    with pytest.raises(InvalidInputError):
        store.get(pk, sk)
    with pytest.raises(InvalidInputError):
        store.delete(pk, sk)


def test_keys_at_dynamodb_limits_are_accepted(store: DocumentStore) -> None:
    pk, sk = "p" * 2048, "s" * 1024
    store.put(pk, sk, {"a": 1})
    assert store.get(pk, sk) == {"a": 1}


@pytest.mark.parametrize(
    "doc",
    [
        ["a list"],
        {"x": math.nan},
        {"x": math.inf},
        {1: "int key"},
        {"x": {1, 2}},
        {"x": "nul\x00"},
        {"a\x00": 1},
    ],
    ids=["list", "nan", "inf", "int-key", "set", "nul-value", "nul-key"],
)
def test_invalid_documents_are_refused(store: DocumentStore, doc: Any) -> None:
    with pytest.raises(InvalidInputError):
        store.put("P", "S", doc)
    assert store.get("P", "S") is None


def test_documents_over_400kb_are_refused(store: DocumentStore) -> None:
    with pytest.raises(InvalidInputError, match=r"400|409600"):
        store.put("P", "S", {"blob": "x" * (400 * 1024)})
    store.put("P", "S", {"blob": "x" * (300 * 1024)})
    got = store.get("P", "S")
    assert got is not None and len(got["blob"]) == 300 * 1024


def test_documents_persist_across_store_instances(store_factory: StoreFactory) -> None:
    with store_factory() as first:
        first.put("P", "S", {"kept": True})
    with store_factory() as second:
        assert second.get("P", "S") == {"kept": True}


def test_closed_store_refuses_calls(store_factory: StoreFactory) -> None:
    s = store_factory()
    s.close()
    with pytest.raises(InvalidInputError):
        s.get("P", "S")


def test_loads_the_worlds_visit_analyses(store: DocumentStore, world_factory: Any) -> None:
    world, _ = world_factory.make(stores=3)
    table = world["visit_analyses"]
    assert load_visit_analyses(store, table) == 3
    assert load_visit_analyses(store, table) == 3  # re-load replaces, no duplicates
    docs = store.query("STORE#S0002", "VISIT#")
    assert len(docs) == 1 and docs[0].doc["stock"] == {"COLA-600-NR": 5}


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
    | st.text(alphabet=st.characters(exclude_characters="\x00", codec="utf-8"), max_size=20)
)
json_docs = st.dictionaries(
    st.text(alphabet=st.characters(exclude_characters="\x00", codec="utf-8"), max_size=10),
    st.recursive(
        json_scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.text(alphabet=st.characters(exclude_characters="\x00", codec="utf-8"), max_size=5),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_docs)
def test_any_json_object_round_trips(store: DocumentStore, doc: dict[str, Any]) -> None:
    store.put("PROP", "S", doc)
    assert store.get("PROP", "S") == doc

"""Fixtures of the source tests: a fresh database per test module, small hand-built worlds, and a
moto server standing in for DynamoDB (no AWS account is reachable here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from moto.server import ThreadedMotoServer

from abasto.sources.pg import create_database, drop_database
from abasto.stream.kinesis_aws import AwsConnection

TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def db_dsn(request: pytest.FixtureRequest, pg_dsn: str) -> Iterator[str]:
    """A database of its own for each test module, dropped (with its slots) afterwards."""
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1]).lower()
    dsn = create_database(pg_dsn, name)
    yield dsn
    drop_database(pg_dsn, name)


@pytest.fixture(scope="session")
def moto_dynamodb() -> Iterator[AwsConnection]:
    """boto3 settings for a moto server (DynamoDB + Streams) on a free local port, dummy credentials."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield AwsConnection(
        region="us-east-1",
        endpoint_url=f"http://{host}:{port}",
        access_key_id="testing",
        secret_access_key="testing",
        timeout_s=5.0,
        max_attempts=2,
    )
    server.stop()


def make_world(
    *, stores: int = 3, skus: int = 2, days: int = 2, start: date = date(2026, 9, 1)
) -> tuple[dict[str, pa.Table], datetime]:
    """A tiny world shaped like docs/CONTRACTS.md; history is every day but the last."""
    store_ids = [f"S{i:04d}" for i in range(1, stores + 1)]
    sku_ids = [f"COLA-{600 + i}-NR" for i in range(skus)]
    hours = [
        datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(hours=h)
        for h in range(days * 24)
    ]
    hourly_rows: dict[str, list[object]] = {
        k: []
        for k in ("store_id", "sku", "hour_start", "demand", "sold_units", "on_hand_start", "on_hand_end")
    }
    for s_i, store in enumerate(store_ids):
        for k_i, sku in enumerate(sku_ids):
            for h_i, hour in enumerate(hours):
                on_hand_end = max(0, 20 - h_i) if (s_i + k_i) % 2 == 0 else 50
                demand = 1.5 if h_i % 3 else 0.0
                sold = 1 if demand and on_hand_end > 0 else 0
                hourly_rows["store_id"].append(store)
                hourly_rows["sku"].append(sku)
                hourly_rows["hour_start"].append(hour)
                hourly_rows["demand"].append(demand)
                hourly_rows["sold_units"].append(sold)
                hourly_rows["on_hand_start"].append(on_hand_end + sold)
                hourly_rows["on_hand_end"].append(on_hand_end)
    world = {
        "regions": pa.table(
            {"region_id": ["R01", "R02"], "name": ["Centro", "Norte"], "base_temp_c": [18.5, 24.0]}
        ),
        "reps": pa.table(
            {
                "rep_id": ["REP01", "REP02"],
                "name": ["Ana", "Luis"],
                "phone": ["+52 55 1", None],
                "region_id": ["R01", "R02"],
            }
        ),
        "routes": pa.table(
            {
                "route_id": ["RT01", "RT02"],
                "region_id": ["R01", "R02"],
                "rep_id": ["REP01", "REP02"],
                "visit_weekdays": pa.array([[0, 3], [1, 4, 5]], pa.list_(pa.int8())),
                "delivery_lag_days": pa.array([1, 1], pa.int8()),
            }
        ),
        "stores": pa.table(
            {
                "store_id": store_ids,
                "name": [f"Tienda {s}" for s in store_ids],
                "owner_name": [f"Dueño {i}" for i in range(stores)],
                "phone": ["+52 55 0000"] * stores,
                "channel": ["tienda"] * stores,
                "region_id": ["R01"] * stores,
                "route_id": ["RT01"] * stores,
                "lat": [19.4] * stores,
                "lon": [-99.1] * stores,
                "coolers": [1] * stores,
                "big_customer": [i == 0 for i in range(stores)],
                "opens_hour": [7] * stores,
                "closes_hour": [21] * stores,
            }
        ),
        "skus": pa.table(
            {
                "sku": sku_ids,
                "brand": ["Cola"] * skus,
                "pack": ["NR"] * skus,
                "size_ml": [600] * skus,
                "returnable": [False] * skus,
                "units_per_case": [24] * skus,
                "price": [14.5] * skus,
            }
        ),
        "assortment": pa.table(
            {
                "store_id": [s for s in store_ids for _ in sku_ids],
                "sku": [k for _ in store_ids for k in sku_ids],
                "base_daily_units": [12.0] * (stores * skus),
                "capacity_units": [48] * (stores * skus),
            }
        ),
        "hourly": pa.table(
            {
                **{k: v for k, v in hourly_rows.items() if k != "hour_start"},
                "hour_start": pa.array(hourly_rows["hour_start"], TS),
            }
        ),
        "orders": pa.table(
            {
                "order_id": ["O1", "O2"],
                "store_id": [store_ids[0], store_ids[-1]],
                "route_id": ["RT01", "RT01"],
                "rep_id": ["REP01", "REP01"],
                "order_date": pa.array([start, start], pa.date32()),
                "delivery_date": pa.array([start + timedelta(days=1), None], pa.date32()),
                "status": ["delivered", "open"],
            }
        ),
        "order_lines": pa.table(
            {
                "order_id": ["O1", "O1", "O2"],
                "line_no": [1, 2, 1],
                "sku": [sku_ids[0], sku_ids[-1], sku_ids[0]],
                "qty_ordered": [24, 12, 6],
                "qty_delivered": [24, 12, None],
                "unit_price": [10.25, 10.25, 10.3],
            }
        ),
        "deliveries": pa.table(
            {
                "delivery_id": ["D1"],
                "order_id": ["O1"],
                "store_id": [store_ids[0]],
                "delivered_at": pa.array(
                    [datetime(start.year, start.month, start.day, 9, tzinfo=UTC) + timedelta(days=1)], TS
                ),
            }
        ),
        "visit_analyses": pa.table(
            {
                "pk": [f"STORE#{s}" for s in store_ids],
                "sk": [f"VISIT#{start.isoformat()}#REP01" for _ in store_ids],
                "doc": [
                    '{"shelf_share": 0.4, "cooler": "ok", "stock": {"COLA-600-NR": 5}}' for _ in store_ids
                ],
            }
        ),
    }
    until = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=days - 1)
    return world, until


@pytest.fixture
def world_factory() -> type[WorldFactory]:
    return WorldFactory


class WorldFactory:
    """``world_factory.make(stores=…)`` builds a tiny world and its history cut-off."""

    make = staticmethod(make_world)

"""Which source tables the lake curates, their keys, partitioning and governance metadata.

Imported by the change-capture side (which tables to capture, their replica-identity keys), by the
curate jobs and by the demo. ``source`` is the table's prefix in the raw zone
(``<raw>/<source>/full_load/…`` and ``…/cdc/…``, see docs/CONTRACTS.md); ``name`` is the curated
table ``curated.<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from abasto.catalog import CURATED, TableMetadata, parse_partition
from abasto.errors import NotFoundError

__all__ = ["ALL_TABLES", "BEHAVIOR_TABLES", "SALES_TABLES", "TableSpec", "get_spec"]

DEFAULT_OWNER = "data-platform"


@dataclass(frozen=True)
class TableSpec:
    """One curated table merged from one source table's change records."""

    name: str
    source: str
    keys: tuple[str, ...]
    partition_by: str | None = None
    description: str = ""
    owner: str = DEFAULT_OWNER
    classification: str = "internal"
    pii_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError(f"table spec {self.name!r} needs at least one key column")
        if self.partition_by is not None:
            parse_partition(self.partition_by)  # fail at definition, not at the first run

    @property
    def identifier(self) -> str:
        return f"{CURATED}.{self.name}"

    def metadata(self) -> TableMetadata:
        return TableMetadata(
            owner=self.owner,
            description=self.description,
            classification=self.classification,
            pii_columns=self.pii_columns,
            source=self.source,
            extra={"abasto.keys": ",".join(self.keys)},
        )


def _sales(
    name: str,
    keys: tuple[str, ...],
    description: str,
    *,
    partition_by: str | None = None,
    classification: str = "internal",
    pii_columns: tuple[str, ...] = (),
) -> TableSpec:
    return TableSpec(
        name=name,
        source=f"sales_db/{name}",
        keys=keys,
        partition_by=partition_by,
        description=description,
        classification=classification,
        pii_columns=pii_columns,
    )


SALES_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _sales("regions", ("region_id",), "Sales regions of gaseosas SA"),
        _sales(
            "reps",
            ("rep_id",),
            "Pre-sell sales representatives",
            classification="pii",
            pii_columns=("name", "phone"),
        ),
        _sales("routes", ("route_id",), "Pre-sell routes: region, rep, visit weekdays, delivery lag"),
        _sales(
            "customers",
            ("store_id",),
            "Customers (points of sale): channel, location, coolers, trading hours",
            classification="pii",
            pii_columns=("owner_name", "phone"),
        ),
        _sales("products", ("sku",), "Products (SKUs): brand, pack, size, returnable, case size, price"),
        _sales("assortment", ("store_id", "sku"), "SKUs each store carries: base daily units, capacity"),
        _sales("orders", ("order_id",), "Orders taken by reps on their visits"),
        _sales("order_lines", ("order_id", "line_no"), "Order lines: SKU, quantity ordered/delivered, price"),
        _sales("deliveries", ("delivery_id",), "Deliveries of orders to stores"),
        _sales(
            "sellout_hourly",
            ("store_id", "sku", "hour_start"),
            "Hourly sell-out per store and SKU: units sold, on-hand at the end, out of stock",
            partition_by="day(hour_start)",
        ),
    )
}

BEHAVIOR_TABLES: dict[str, TableSpec] = {
    "behavior_documents": TableSpec(
        name="behavior_documents",
        source="behavior/documents",
        keys=("pk", "sk"),
        description="Purchase-behaviour documents and reps' visit analyses (DynamoDB-style pk/sk, JSON doc)",
        classification="confidential",
    ),
}

#: every curated table fed by change capture
ALL_TABLES: dict[str, TableSpec] = {**SALES_TABLES, **BEHAVIOR_TABLES}


def get_spec(name: str) -> TableSpec:
    """The spec of curated table ``name`` (``curated.`` prefix optional).

    Raises:
        NotFoundError: no such table.
    """
    short = name.removeprefix(f"{CURATED}.")
    try:
        return ALL_TABLES[short]
    except KeyError:
        raise NotFoundError(
            f"no curated table {name!r}", hint=f"known tables: {', '.join(sorted(ALL_TABLES))}"
        ) from None

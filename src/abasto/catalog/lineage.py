"""Lineage: where a table's data comes from and which job runs put it there.

- A curated table names its raw dataset in the ``abasto.source`` table property; each data snapshot
  the curate job commits lists the raw files it applied in its summary (``abasto.raw-files``, see
  :mod:`abasto.lake.ledger`). One job run is one commit: an overwrite's delete and append snapshots
  carry the same list and count once (the later snapshot is the run's result).
- A raw dataset comes from a source system (the sales database, the behaviour document store, the
  POS devices) and feeds the curated tables whose source it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.catalog.factory import CURATED, ZONES
from abasto.catalog.raw_layout import RAW, raw_table_name, source_system
from abasto.catalog.raw_registry import RawRegistry
from abasto.catalog.tables import load_table
from abasto.errors import NotFoundError
from abasto.lake.ledger import SUMMARY_FILES

__all__ = ["JOB_CURATE", "JobRun", "Lineage", "Upstream", "lineage", "resolve_name"]

#: the job that writes curated tables (``abasto jobs run``)
JOB_CURATE = "curate"
PROP_SOURCE = "abasto.source"


@dataclass(frozen=True)
class JobRun:
    """One commit of a job: the snapshot it produced and the raw files it read (relative to the
    upstream dataset's prefix)."""

    job: str
    snapshot_id: int
    committed_at: datetime
    operation: str
    files: tuple[str, ...]
    records_added: int


@dataclass(frozen=True)
class Upstream:
    """An input of a table: a raw dataset (``files`` read from it) or a source system."""

    name: str
    kind: str
    location: str
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lineage:
    table: str
    zone: str
    upstream: tuple[Upstream, ...]
    runs: tuple[JobRun, ...]
    downstream: tuple[str, ...]


def resolve_name(name: str, catalog: Catalog, registry: RawRegistry) -> str:
    """The catalog name of ``name``: ``raw.x``/``curated.x``/``marts.x`` as given, a raw prefix
    (``sales_db/orders``) as its raw table, a bare name as the curated table, else the raw one.

    Raises:
        NotFoundError: nothing of that name is catalogued.
    """
    zone = name.split(".", 1)[0] if "." in name else ""
    if zone == RAW and registry.get(name) is not None:
        return name
    if zone in ZONES and load_table(catalog, name) is not None:
        return name
    if not zone:
        if "/" not in name and load_table(catalog, f"{CURATED}.{name}") is not None:
            return f"{CURATED}.{name}"
        raw = raw_table_name(name)
        if registry.get(raw) is not None:
            return raw
    raise NotFoundError(
        f"no table {name!r} in the catalog", hint="see `abasto catalog list`; run `abasto catalog crawl`"
    )


def lineage(name: str, *, catalog: Catalog, registry: RawRegistry) -> Lineage:
    """Upstream datasets, files and job runs of ``name``, and the tables it feeds.

    Raises:
        NotFoundError: nothing of that name is catalogued.
    """
    resolved = resolve_name(name, catalog, registry)
    if resolved.startswith(f"{RAW}."):
        return _raw_lineage(resolved, catalog, registry)
    table = catalog.load_table(resolved)
    runs = job_runs(table)
    source = table.properties.get(PROP_SOURCE, "")
    upstream: list[Upstream] = []
    if source:
        raw = registry.get(raw_table_name(source))
        files = tuple(sorted({f for run in runs for f in run.files}))
        location = raw.location if raw else source
        upstream.append(Upstream(raw_table_name(source), RAW, location, files))
    return Lineage(resolved, resolved.split(".", 1)[0], tuple(upstream), tuple(runs), ())


def job_runs(table: Table) -> list[JobRun]:
    """The curate job's commits to ``table`` that are still retained, oldest first."""
    runs: list[JobRun] = []
    last_payload: str | None = None
    for snap in sorted(table.snapshots(), key=lambda s: (s.sequence_number or 0, s.timestamp_ms)):
        props = snap.summary.additional_properties if snap.summary else {}
        payload = props.get(SUMMARY_FILES)
        if payload is None:
            last_payload = None
            continue
        run = JobRun(
            job=JOB_CURATE,
            snapshot_id=snap.snapshot_id,
            committed_at=datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=UTC),
            operation=str(snap.summary.operation.value) if snap.summary else "",
            files=tuple(str(entry[0]) for entry in json.loads(payload)),
            records_added=int(props.get("added-records", "0")),
        )
        same_commit = runs and payload == last_payload and snap.parent_snapshot_id == runs[-1].snapshot_id
        if same_commit:  # the append half of an overwrite
            previous = runs.pop()
            run = JobRun(
                run.job,
                run.snapshot_id,
                run.committed_at,
                "overwrite",
                run.files,
                previous.records_added + run.records_added,
            )
        runs.append(run)
        last_payload = payload
    return runs


def _raw_lineage(name: str, catalog: Catalog, registry: RawRegistry) -> Lineage:
    raw = registry.get(name)
    assert raw is not None  # resolve_name checked it
    files = tuple(f.relpath for f in registry.files(name))
    downstream = []
    for ident in sorted(catalog.list_tables(CURATED)) if _has_namespace(catalog, CURATED) else []:
        table = load_table(catalog, ".".join(ident))
        if table is not None and table.properties.get(PROP_SOURCE) == raw.prefix:
            downstream.append(".".join(ident))
    origin = Upstream(source_system(raw.prefix), "source", raw.prefix, files)
    return Lineage(name, RAW, (origin,), (), tuple(downstream))


def _has_namespace(catalog: Catalog, namespace: str) -> bool:
    return (namespace,) in catalog.list_namespaces()

"""Load the generated world's ``visit_analyses`` (pk, sk, doc as JSON text) into a document store."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from abasto.errors import InvalidInputError
from abasto.sources.behavior.port import Document, DocumentStore
from abasto.sources.progress import LoadProgress, ProgressCallback, ignore_progress

#: documents validated and written per put_many call (also the progress granularity)
BATCH = 5_000


def load_visit_analyses(
    store: DocumentStore, table: pa.Table, *, on_progress: ProgressCallback = ignore_progress
) -> int:
    """Put every visit analysis into ``store`` (existing keys are replaced); returns documents written.

    Raises:
        InvalidInputError: a column is missing, or a ``doc`` is not a JSON object (the key is named).
        ServiceUnavailableError: the store cannot be reached.
    """
    absent = [c for c in ("pk", "sk", "doc") if c not in table.column_names]
    if absent:
        raise InvalidInputError(f"visit_analyses lacks column(s): {', '.join(absent)}")
    total = table.num_rows
    written = 0
    for batch in table.select(["pk", "sk", "doc"]).to_batches(BATCH):
        written += store.put_many(_documents(batch))
        on_progress(LoadProgress("behavior.documents", written, total))
    return written


def _documents(batch: pa.RecordBatch) -> Iterator[Document]:
    for pk, sk, text in zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True):
        try:
            doc = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"visit analysis ({pk!r}, {sk!r}): doc is not JSON: {exc}") from exc
        yield Document(pk=pk, sk=sk, doc=doc)

"""DynamoDB backend of the document store (the seed's Amazon DynamoDB), on boto3.

Table layout: ``pk`` (HASH, string) and ``sk`` (RANGE, string), on-demand billing, created when
absent with a stream of ``NEW_AND_OLD_IMAGES`` (what :mod:`abasto.cdc.dynamodb_streams` captures
into the raw zone). Each item holds:

- ``doc`` — the document as **compact JSON text** (attribute type ``S``), not a DynamoDB Map. JSON
  text keeps every value exactly as the other backends do (64-bit integers, floats without a
  float↔Decimal round trip, empty keys, ``null``), is what the raw zone carries anyway (the ``doc``
  column is JSON text), and counts against the 400 KB item limit the same way
  :func:`~abasto.sources.behavior.validation.encode_doc` measures it. The price: DynamoDB filter or
  update expressions cannot reach inside a document (abasto never uses them: ``put`` replaces whole
  documents, ``query`` selects by key).
- ``updated_at`` — ISO-8601 UTC time of the write (microseconds), like the PostgreSQL backend's column.

Reads are strongly consistent (read-your-writes, as the conformance suite expects). ``put_many``
uses BatchWriteItem in chunks of 25 and re-sends ``UnprocessedItems`` with exponential backoff.
Errors: throttling and service faults → :class:`~abasto.errors.ServiceUnavailableError` (transient;
boto3's standard retry mode retries them first); a request DynamoDB refuses as invalid →
:class:`~abasto.errors.InvalidInputError`; bad credentials → :class:`~abasto.errors.ConfigError`.

No AWS account is reachable where abasto is developed: this backend is exercised against moto's
DynamoDB in server mode (tests/sources/test_document_store_conformance.py and
tests/sources/test_dynamodb_store.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.config
import botocore.exceptions

from abasto.errors import ConfigError, InvalidInputError, ServiceUnavailableError
from abasto.sources.behavior.port import Document, DocumentStore
from abasto.sources.behavior.validation import MAX_ITEM_BYTES, check_key, check_pk, decode_doc, encode_doc
from abasto.stream.kinesis_aws import AwsConnection, error_code, translate

__all__ = ["DynamoDocumentStore", "aws_client", "connection_from_uri", "item_size"]

T = TypeVar("T")

BATCH_SIZE: Final = 25  # BatchWriteItem's limit
_INVALID_CODES: Final = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


def aws_client(conn: AwsConnection, service: str) -> Any:
    """A boto3 client of ``service`` (``dynamodb``, ``dynamodbstreams``) for ``conn``."""
    cfg = botocore.config.Config(
        region_name=conn.region,
        connect_timeout=conn.timeout_s,
        read_timeout=conn.timeout_s,
        retries={"max_attempts": conn.max_attempts, "mode": "standard"},
    )
    session = boto3.session.Session(
        aws_access_key_id=conn.access_key_id,
        aws_secret_access_key=conn.secret_access_key,
        region_name=conn.region,
    )
    return session.client(service, endpoint_url=conn.endpoint_url, config=cfg)


def call_aws(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with boto3 errors translated to abasto errors."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if error_code(exc) in _INVALID_CODES:
            raise InvalidInputError(f"{what}: DynamoDB refused the request: {exc}") from exc
        translated = translate(exc, what)
        if translated is exc:
            raise
        raise translated from exc


def connection_from_uri(uri: str) -> tuple[str, AwsConnection]:
    """``dynamodb://<table>?region=…&endpoint_url=…`` → (table, connection). Credentials come from
    boto3's chain (environment, profile, instance role), never from the URI.

    Raises:
        ConfigError: not a ``dynamodb://`` URI, or no table name.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "dynamodb" or not parts.netloc:
        raise ConfigError(f"not a DynamoDB URI: {uri!r}", hint="use dynamodb://<table>?region=<region>")
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(params) - {"region", "endpoint_url"}
    if unknown:
        raise ConfigError(
            f"unknown DynamoDB URI parameters {sorted(unknown)}", hint="known: region, endpoint_url"
        )
    return parts.netloc, AwsConnection(
        region=params.get("region", "us-east-1"), endpoint_url=params.get("endpoint_url") or None
    )


def item_size(pk: str, sk: str, doc_text: str, updated_at: str) -> int:
    """The item's size as DynamoDB counts it: attribute names plus UTF-8 string values."""
    return sum(
        len(name) + len(value.encode())
        for name, value in (("pk", pk), ("sk", sk), ("doc", doc_text), ("updated_at", updated_at))
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class DynamoDocumentStore(DocumentStore):
    """Documents in a DynamoDB table (pk HASH / sk RANGE; see the module docstring)."""

    def __init__(
        self,
        table: str,
        connection: AwsConnection | None = None,
        *,
        create: bool = True,
        max_batch_attempts: int = 8,
        backoff_s: float = 0.05,
    ) -> None:
        """Raises:
        ServiceUnavailableError: DynamoDB cannot be reached.
        ConfigError: credentials are refused.
        """
        self._table = table
        self._conn = connection or AwsConnection()
        self._client: Any = aws_client(self._conn, "dynamodb")
        self._max_batch_attempts = max_batch_attempts
        self._backoff_s = backoff_s
        self._closed = False
        self._lock = threading.Lock()
        if create:
            self.create_table()

    @property
    def table(self) -> str:
        return self._table

    @property
    def connection(self) -> AwsConnection:
        return self._conn

    def create_table(self) -> None:
        """Create the table (with its NEW_AND_OLD_IMAGES stream) if missing and wait until active."""
        client = self._live()
        try:
            client.describe_table(TableName=self._table)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                translated = translate(exc, f"describe DynamoDB table {self._table}")
                if translated is exc:
                    raise
                raise translated from exc
            try:
                client.create_table(
                    TableName=self._table,
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                )
            except botocore.exceptions.ClientError as create_exc:
                if error_code(create_exc) != "ResourceInUseException":  # created meanwhile: fine
                    raise translate(create_exc, f"create DynamoDB table {self._table}") from create_exc
        call_aws(
            f"wait for DynamoDB table {self._table}",
            client.get_waiter("table_exists").wait,
            TableName=self._table,
            WaiterConfig={"Delay": 1, "MaxAttempts": 120},
        )

    def put(self, pk: str, sk: str, doc: Mapping[str, Any]) -> None:
        check_key(pk, sk)
        item = self._item(pk, sk, doc)
        call_aws(f"put ({pk!r}, {sk!r})", self._live().put_item, TableName=self._table, Item=item)

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        check_key(pk, sk)
        response = call_aws(
            f"get ({pk!r}, {sk!r})",
            self._live().get_item,
            TableName=self._table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else decode_doc(item["doc"]["S"])

    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, descending: bool = False
    ) -> list[Document]:
        check_pk(pk)
        if limit is not None and limit <= 0:
            raise InvalidInputError(f"limit must be positive, got {limit}")
        if sk_prefix is not None and not isinstance(sk_prefix, str):
            raise InvalidInputError(f"sk_prefix must be a string, got {type(sk_prefix).__name__}")
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": not descending,
            "ConsistentRead": True,
        }
        if sk_prefix:
            request["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
            request["ExpressionAttributeNames"]["#sk"] = "sk"
            request["ExpressionAttributeValues"][":prefix"] = {"S": sk_prefix}
        found: list[Document] = []
        client = self._live()
        while True:  # one page per call (1 MB at most); LastEvaluatedKey continues
            if limit is not None:
                request["Limit"] = limit - len(found)
            page = call_aws(f"query {pk!r}", client.query, **request)
            found += [
                Document(pk=i["pk"]["S"], sk=i["sk"]["S"], doc=decode_doc(i["doc"]["S"]))
                for i in page.get("Items", [])
            ]
            last = page.get("LastEvaluatedKey")
            if not last or (limit is not None and len(found) >= limit):
                return found
            request["ExclusiveStartKey"] = last

    def delete(self, pk: str, sk: str) -> bool:
        check_key(pk, sk)
        response = call_aws(
            f"delete ({pk!r}, {sk!r})",
            self._live().delete_item,
            TableName=self._table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def put_many(self, items: Iterable[Document]) -> int:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            check_key(item.pk, item.sk)
            latest[(item.pk, item.sk)] = self._item(item.pk, item.sk, item.doc)
        if not latest:
            return 0
        client = self._live()
        requests = [{"PutRequest": {"Item": item}} for item in latest.values()]
        for start in range(0, len(requests), BATCH_SIZE):
            self._write_batch(client, requests[start : start + BATCH_SIZE])
        return len(latest)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()

    # --- helpers ------------------------------------------------------------------------------

    def _live(self) -> Any:
        if self._closed:
            raise InvalidInputError("the document store is closed")
        return self._client

    def _item(self, pk: str, sk: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        text = encode_doc(pk, sk, doc)
        stamp = _now_iso()
        size = item_size(pk, sk, text, stamp)
        if size > MAX_ITEM_BYTES:
            raise InvalidInputError(
                f"document at ({pk!r}, {sk!r}) makes a {size}-byte item; "
                f"the limit is {MAX_ITEM_BYTES} (DynamoDB's item size)"
            )
        return {"pk": {"S": pk}, "sk": {"S": sk}, "doc": {"S": text}, "updated_at": {"S": stamp}}

    def _write_batch(self, client: Any, requests: list[dict[str, Any]]) -> None:
        """One BatchWriteItem of ≤ 25 puts; unprocessed items are re-sent with exponential backoff."""
        pending = requests
        for attempt in range(self._max_batch_attempts):
            response = call_aws(
                f"batch write to {self._table}", client.batch_write_item, RequestItems={self._table: pending}
            )
            pending = response.get("UnprocessedItems", {}).get(self._table, [])
            if not pending:
                return
            time.sleep(min(self._backoff_s * 2**attempt, 2.0))
        raise ServiceUnavailableError(
            f"DynamoDB left {len(pending)} items of a batch unprocessed after "
            f"{self._max_batch_attempts} attempts (throttled); re-running put_many is safe"
        )

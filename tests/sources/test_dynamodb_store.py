"""DynamoDB document store specifics beyond the conformance suite: URI, table layout, batching,
error mapping. No AWS account is reachable here: DynamoDB is moto's, in server mode."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from abasto.errors import ConfigError, ServiceUnavailableError
from abasto.sources.behavior import Document, DynamoDocumentStore, open_document_store
from abasto.sources.behavior.dynamodb import aws_client, connection_from_uri
from abasto.stream.kinesis_aws import AwsConnection


def test_uri_names_table_region_and_endpoint() -> None:
    table, conn = connection_from_uri("dynamodb://behavior-docs?region=sa-east-1&endpoint_url=http://h:1")
    assert (table, conn.region, conn.endpoint_url) == ("behavior-docs", "sa-east-1", "http://h:1")
    with pytest.raises(ConfigError):
        connection_from_uri("dynamodb://t?secret=x")
    with pytest.raises(ConfigError):
        connection_from_uri("dynamodb://")


def test_open_document_store_by_uri_creates_the_table_with_a_stream(
    moto_dynamodb: AwsConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    uri = f"dynamodb://uri-docs?region=us-east-1&endpoint_url={moto_dynamodb.endpoint_url}"
    with open_document_store(uri) as store:
        assert isinstance(store, DynamoDocumentStore)
        store.put("P", "S", {"a": 1})
    client = aws_client(moto_dynamodb, "dynamodb")
    try:
        table = client.describe_table(TableName="uri-docs")["Table"]
        item = client.get_item(TableName="uri-docs", Key={"pk": {"S": "P"}, "sk": {"S": "S"}})["Item"]
    finally:
        client.close()
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert item["doc"] == {"S": '{"a":1}'} and item["updated_at"]["S"].endswith("Z")  # JSON text


def test_query_pages_through_more_than_one_megabyte(moto_dynamodb: AwsConnection) -> None:
    with DynamoDocumentStore("big-docs", moto_dynamodb) as store:
        blob = "x" * (200 * 1024)
        store.put_many(Document("P", f"S{i:02d}", {"blob": blob, "i": i}) for i in range(8))  # ~1.6 MB
        assert [d.doc["i"] for d in store.query("P")] == list(range(8))
        assert [d.doc["i"] for d in store.query("P", limit=6, descending=True)] == [7, 6, 5, 4, 3, 2]


class _Throttled:
    """A DynamoDB client whose BatchWriteItem leaves items unprocessed, or throttles outright."""

    def __init__(self, real: Any, unprocessed_rounds: int, throttle: bool = False) -> None:
        self.real, self.rounds, self.throttle, self.calls = real, unprocessed_rounds, throttle, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.throttle:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                "BatchWriteItem",
            )
        ((table, requests),) = RequestItems.items()
        if self.calls <= self.rounds:  # write the first half, hand back the rest
            half = len(requests) // 2
            if half:
                self.real.batch_write_item(RequestItems={table: requests[:half]})
            return {"UnprocessedItems": {table: requests[half:]}}
        result: dict[str, Any] = self.real.batch_write_item(RequestItems=RequestItems)
        return result


def test_put_many_resends_unprocessed_items(moto_dynamodb: AwsConnection) -> None:
    with DynamoDocumentStore("retry-docs", moto_dynamodb, backoff_s=0.001) as store:
        fake = _Throttled(store._client, unprocessed_rounds=2)
        store._client = fake
        assert store.put_many(Document("P", f"S{i:02d}", {"i": i}) for i in range(25)) == 25
        assert fake.calls == 3
        assert len(store.query("P")) == 25


def test_throttling_is_transient(moto_dynamodb: AwsConnection) -> None:
    with DynamoDocumentStore("throttled-docs", moto_dynamodb, backoff_s=0.001, max_batch_attempts=3) as store:
        store._client = _Throttled(store._client, unprocessed_rounds=99)
        with pytest.raises(ServiceUnavailableError, match="unprocessed"):
            store.put_many([Document("P", "A", {}), Document("P", "B", {})])
        store._client = _Throttled(store._client.real, unprocessed_rounds=0, throttle=True)
        with pytest.raises(ServiceUnavailableError, match="ProvisionedThroughputExceeded"):
            store.put_many([Document("P", "A", {})])


def test_unreachable_endpoint_is_transient() -> None:
    conn = AwsConnection(
        endpoint_url="http://127.0.0.1:1",
        access_key_id="x",
        secret_access_key="x",
        timeout_s=1,
        max_attempts=1,
    )
    with pytest.raises(ServiceUnavailableError):
        DynamoDocumentStore("nowhere", conn)

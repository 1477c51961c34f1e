"""boto3 plumbing of the Kinesis backend: clients, a thread pool for blocking calls, error mapping."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from abasto.errors import (
    AbastoError,
    ConfigError,
    NotFoundError,
    ServiceUnavailableError,
    TerminalError,
)

T = TypeVar("T")

#: AWS error codes worth retrying later (throttling, a resource in transition, server faults)
TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        "ResourceInUseException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflictException",
    }
)
_CONFIG_CODES: Final = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)


@dataclass(frozen=True, slots=True)
class AwsConnection:
    """Where the Kinesis and DynamoDB APIs are. ``endpoint_url`` points both at one server
    (moto, LocalStack); None = the region's AWS endpoints. Credentials: None = boto3's chain."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    timeout_s: float = 10.0
    max_attempts: int = 3


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def translate(exc: BaseException, what: str) -> BaseException:
    """An abasto error for a boto3/botocore error; other exceptions unchanged."""
    if isinstance(exc, AbastoError):
        return exc
    code = error_code(exc)
    if code is not None:
        message = f"{what}: {code}: {exc}"
        if code == "ResourceNotFoundException":
            return NotFoundError(message)
        if code in TRANSIENT_CODES:
            return ServiceUnavailableError(message)
        if code in _CONFIG_CODES:
            return ConfigError(message, hint="check the AWS credentials and region of the Kinesis backend")
        return TerminalError(message)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ConfigError(f"{what}: no AWS credentials", hint="configure credentials or an endpoint")
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return ServiceUnavailableError(f"{what}: {exc!r}")
    return exc


class AwsCaller:
    """Runs blocking boto3 calls on a private thread pool and translates their errors."""

    def __init__(self, conn: AwsConnection, *, threads: int = 16) -> None:
        self._conn = conn
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self.kinesis: Any = None
        self.dynamodb: Any = None

    def open(self) -> None:
        if self._pool is not None:
            return
        cfg = botocore.config.Config(
            region_name=self._conn.region,
            connect_timeout=self._conn.timeout_s,
            read_timeout=self._conn.timeout_s,
            retries={"max_attempts": self._conn.max_attempts, "mode": "standard"},
            max_pool_connections=self._threads,
        )
        session = boto3.session.Session(
            aws_access_key_id=self._conn.access_key_id,
            aws_secret_access_key=self._conn.secret_access_key,
            region_name=self._conn.region,
        )
        self.kinesis = session.client("kinesis", endpoint_url=self._conn.endpoint_url, config=cfg)
        self.dynamodb = session.client("dynamodb", endpoint_url=self._conn.endpoint_url, config=cfg)
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="abasto-kinesis")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for client in (self.kinesis, self.dynamodb):
            if client is not None:
                client.close()
        self.kinesis = self.dynamodb = None

    async def run(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            raise ServiceUnavailableError("Kinesis stream not connected: call connect() first")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except Exception as exc:
            translated = translate(exc, what)
            if translated is exc:
                raise
            raise translated from exc

"""Run the delivery in a child process and ``kill -9`` it at one point of one batch.

``python kill_runner.py <nats_url> <stream> <raw_uri> <durable> <stage> <batch_first_seq>``: the
process SIGKILLs itself when the delivery reaches ``stage`` (a :data:`abasto.delivery.FaultHook`
stage) of the batch starting at ``batch_first_seq``; it exits 0 if that point is never reached.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from delivery_helpers import RECEIVED_AT, kill_test_config

from abasto.delivery import BatchManifest, RawDelivery
from abasto.stream.jetstream import JetStreamEventStream


async def main(url: str, stream_name: str, raw_uri: str, durable: str, stage: str, first: int) -> None:
    def hook(at: str, manifest: BatchManifest) -> None:
        if at == stage and manifest.first_seq == first:
            os.kill(os.getpid(), signal.SIGKILL)

    async with JetStreamEventStream(url, name="killed-delivery") as stream:
        delivery = RawDelivery(
            stream,
            raw_uri,
            kill_test_config(stream_name, durable),
            wall_clock=lambda: RECEIVED_AT,
            fault_hook=hook,
        )
        await delivery.run_until_idle()


if __name__ == "__main__":
    url, stream_name, raw_uri, durable, stage, first = sys.argv[1:7]
    asyncio.run(main(url, stream_name, raw_uri, durable, stage, int(first)))

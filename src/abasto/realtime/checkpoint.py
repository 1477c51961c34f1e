"""Durable checkpoints of a processor worker: engine state tagged with the last input it covers.

One file per worker (``<dir>/<durable>.ckpt``), replaced atomically: written to a temporary file,
fsynced, renamed over the old one, and the directory fsynced. A reader sees the old checkpoint or
the new one, never half of one; a crash at any point leaves the last complete checkpoint.

File layout: ``ABASTOCK`` magic, then a MessagePack :class:`Checkpoint` (msgspec, typed, no
pickle). The engine snapshot is kept as opaque bytes inside so the header can be read (and
checked against the worker's partition) before decoding state.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Final

import msgspec

from abasto.errors import ConfigError, InvalidInputError
from abasto.realtime.snapshot import EngineSnapshot, decode_snapshot, encode_snapshot

_MAGIC: Final = b"ABASTOCK"


class Checkpoint(msgspec.Struct, frozen=True):
    #: durable consumer the worker reads with
    durable: str
    #: this worker's partition: index of count (0 of 1 = every store)
    partition: int
    partitions: int
    #: the last input stream sequence the state includes (0: none)
    stream_seq: int
    #: messages applied since the worker's first start (for monitoring)
    messages: int
    #: engine snapshot (``realtime.snapshot``), compressed
    state: bytes
    #: crc32 of ``state``
    crc: int

    @classmethod
    def of(
        cls,
        durable: str,
        partition: int,
        partitions: int,
        stream_seq: int,
        messages: int,
        snap: EngineSnapshot,
    ) -> Checkpoint:
        state = zlib.compress(encode_snapshot(snap), 1)
        return cls(durable, partition, partitions, stream_seq, messages, state, zlib.crc32(state))

    def engine_state(self) -> EngineSnapshot:
        if zlib.crc32(self.state) != self.crc:
            raise InvalidInputError(f"checkpoint of {self.durable} at seq {self.stream_seq}: bad checksum")
        return decode_snapshot(zlib.decompress(self.state))


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Checkpoint)


class CheckpointStore:
    """Checkpoints of the workers under one directory (local disk; one writer per durable)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, durable: str) -> Path:
        return self.directory / f"{durable}.ckpt"

    def load(self, durable: str) -> Checkpoint | None:
        """The latest checkpoint of ``durable``; None if it never checkpointed.

        Raises:
            InvalidInputError: the file is not a checkpoint (or is damaged).
        """
        path = self.path(durable)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(_MAGIC):
            raise InvalidInputError(f"{path} is not an abasto checkpoint")
        try:
            return _decoder.decode(data[len(_MAGIC) :])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInputError(f"{path}: damaged checkpoint ({exc})") from exc

    def load_for(self, durable: str, partition: int, partitions: int) -> Checkpoint | None:
        """As :meth:`load`, refusing a checkpoint taken with another partitioning.

        Raises:
            ConfigError: the worker was repartitioned (its state covers other stores).
        """
        ckpt = self.load(durable)
        if ckpt is not None and (ckpt.partition, ckpt.partitions) != (partition, partitions):
            raise ConfigError(
                f"checkpoint {self.path(durable)} is for partition {ckpt.partition} of {ckpt.partitions}, "
                f"not {partition} of {partitions}",
                hint="repartitioning needs fresh state: remove the checkpoints of every worker",
            )
        return ckpt

    def save(self, ckpt: Checkpoint) -> Path:
        """Write ``ckpt`` durably and atomically (replaces the previous one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(ckpt.durable)
        tmp = path.with_name(f"{path.name}.tmp")
        with tmp.open("wb") as f:
            f.write(_MAGIC)
            f.write(_encoder.encode(ckpt))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

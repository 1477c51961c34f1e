"""PostgreSQL log sequence numbers: ``16/B374D848`` text ↔ int, and the 16-digit form of file names."""

from __future__ import annotations

from abasto.errors import InvalidInputError

#: microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC)
PG_EPOCH_OFFSET_US = 946_684_800_000_000


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` → ``0x16_B374D848``.

    Raises:
        InvalidInputError: not ``hex/hex``.
    """
    high, sep, low = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError as exc:
        raise InvalidInputError(f"not an LSN: {text!r}") from exc


def format_lsn(value: int) -> str:
    """``0x16_B374D848`` → ``'16/B374D848'`` (PostgreSQL's spelling)."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def lsn16(value: int) -> str:
    """The LSN as 16 zero-padded upper-case hex digits: names that sort in commit order."""
    return f"{value:016X}"


def pg_time_to_unix_us(pg_us: int) -> int:
    """Microseconds since 2000-01-01 (PostgreSQL) → since 1970-01-01 (Arrow/Unix)."""
    return pg_us + PG_EPOCH_OFFSET_US

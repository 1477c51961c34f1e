"""abasto: stockout early warning for gaseosas SA, from POS streams to alerts."""

__version__ = "0.1.0"

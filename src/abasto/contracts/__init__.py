"""Contracts that several components share and that must stay stable (ARCHITECTURE.md)."""

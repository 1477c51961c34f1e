"""Devices at the points of sale: the per-store MQTT credentials registry."""

from __future__ import annotations

from abasto.devices.registry import CredentialRegistry, Credentials

__all__ = ["CredentialRegistry", "Credentials"]

"""Embedded services (nats-server with JetStream + MQTT, PostgreSQL), supervised.

``up`` / ``down`` / ``status`` start, stop and inspect them; ``reload_nats`` applies credential
registry changes to a running nats-server; ``nats_connect_options`` gives workers their login.
"""

from __future__ import annotations

from abasto.services.model import ServiceOutcome, ServiceState, ServiceStatus, UpAction, UpReport
from abasto.services.secrets import ServiceCredentials, service_credentials
from abasto.services.supervisor import down, nats_connect_options, reload_nats, status, up

__all__ = [
    "ServiceCredentials",
    "ServiceOutcome",
    "ServiceState",
    "ServiceStatus",
    "UpAction",
    "UpReport",
    "down",
    "nats_connect_options",
    "reload_nats",
    "service_credentials",
    "status",
    "up",
]

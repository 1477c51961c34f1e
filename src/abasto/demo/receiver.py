"""A local webhook subscriber for the demo: receives signed alert notifications and checks them.

It stands for a planner's system (or a chat bot) subscribed to the alert topics; the demo report
counts what arrived and whether every signature verified.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from abasto.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass
class Received:
    verified: int = 0
    rejected: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


class WebhookReceiver:
    """``with WebhookReceiver(secret) as rx: ... rx.url ... rx.received``"""

    def __init__(self, secret: str) -> None:
        self.received = Received()
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify_signature(
                    secret,
                    body,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    self.headers.get(SIGNATURE_HEADER, ""),
                )
                with lock:
                    if ok:
                        outer.received.verified += 1
                        outer.received.bodies.append(json.loads(body))
                    else:
                        outer.received.rejected += 1
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

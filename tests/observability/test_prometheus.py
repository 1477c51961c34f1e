"""Prometheus exposition: scraped values equal the live counters of the components that own them."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realtime"))

from realtime_doubles import SKU, Device, FlatPattern, local, reference

from abasto.delivery.metrics import DeliveryMetrics
from abasto.errors import PortInUseError
from abasto.ingest.refusals import RefusalCounter
from abasto.observability import (
    DeliveryCollector,
    ProcessorCollector,
    RefusalCollector,
    registry_of,
    serve_metrics,
)
from abasto.realtime.engine import Engine
from abasto.settings import load_settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (sample name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def busy_engine() -> Engine:
    """An engine that processed accepted, duplicate, late and invalid events and raised alerts."""
    eng, dev = Engine(FlatPattern({("S1", SKU): 2.0}), reference()), Device("S1")
    msgs = [dev.stock(local(14, 8), 40)]
    t = local(14, 8, 10)
    while t < local(14, 14, 30):  # 6 units/h where the pattern expects 2: a projected stockout
        msgs.append(dev.sale(t))
        t = t.replace(minute=t.minute + 10) if t.minute < 50 else t.replace(hour=t.hour + 1, minute=0)
    msgs += msgs[:5]  # replays: duplicates
    msgs.append(dev.sale(local(14, 12), 2))  # older than the watermark: late
    msgs += [(dev.subject, b"{not json"), (dev.subject, b'{"device_id": 3}'), ("pos", msgs[1][1])]
    for subject, data in msgs:
        eng.process(subject, data)
    return eng


def test_processor_counters_are_exposed_as_they_are() -> None:
    eng = busy_engine()
    m = eng.metrics
    assert m.alerts_total > 0 and m.duplicates == 5 and m.late >= 1 and m.rejected_total == 3  # a busy run
    samples = parse(
        generate_latest(registry_of(ProcessorCollector(lambda: m, const_labels={"worker": "3"}))).decode()
    )
    assert samples[("abasto_events_received_total", (("worker", "3"),))] == m.received
    outcomes = by_label(samples, "abasto_events_total", "outcome")
    assert outcomes == {"accepted": m.accepted, "rejected": m.rejected_total, "duplicate": m.duplicates}
    assert sum(outcomes.values()) == m.received
    assert samples[("abasto_events_late_total", (("worker", "3"),))] == m.late
    assert by_label(samples, "abasto_events_rejected_total", "reason") == dict(m.rejected)
    assert by_label(samples, "abasto_alerts_total", "kind") == dict(m.alerts)
    assert by_label(samples, "abasto_events_accepted_by_type_total", "type") == dict(m.by_type)
    assert samples[("abasto_risk_evaluations_total", (("worker", "3"),))] == m.evaluations


def test_collector_follows_the_live_object() -> None:
    holder: dict[str, Engine] = {}
    registry = registry_of(ProcessorCollector(lambda: holder["e"].metrics if "e" in holder else None))
    assert parse(generate_latest(registry).decode()) == {}  # nothing before the component exists
    holder["e"] = eng = busy_engine()
    before = parse(generate_latest(registry).decode())[("abasto_events_received_total", ())]
    eng.process("pos", b"x")
    after = parse(generate_latest(registry).decode())
    assert after[("abasto_events_received_total", ())] == before + 1 == eng.metrics.received
    assert (
        after[("abasto_events_rejected_total", (("reason", "bad_subject"),))]
        == eng.metrics.rejected["bad_subject"]
    )


def test_delivery_counters_have_their_names_and_labels() -> None:
    m = DeliveryMetrics(
        messages=120, rows_written=110, duplicates=4, batches=3, files_written=5, files_skipped=2
    )
    m.invalid.update({"malformed_json": 5, "invalid_field": 1})
    samples = parse(generate_latest(registry_of(DeliveryCollector(lambda: m))).decode())
    assert samples[("abasto_delivery_messages_total", ())] == 120
    assert samples[("abasto_delivery_rows_written_total", ())] == 110
    assert by_label(samples, "abasto_delivery_invalid_total", "reason") == {
        "malformed_json": 5,
        "invalid_field": 1,
    }
    assert by_label(samples, "abasto_delivery_files_total", "outcome") == {"written": 5, "skipped": 2}
    assert samples[("abasto_delivery_duplicates_total", ())] == 4


def test_mqtt_refusals_from_the_server_log(tmp_path: Path) -> None:
    log = tmp_path / "nats.log"
    line = (
        '[1] 2026/11/25 18:48:47.287190 [ERR] 127.0.0.1:52809 - cid:7 - "c" - User "{u}" - '
        'Publish Violation - Subject "pos.S2.D1"\n'
    )
    log.write_text(line.format(u="store-S1") * 2 + "[INF] nothing\n" + line.format(u="store-S3"))
    counter = RefusalCounter(load_settings(home=tmp_path), log_file=log)
    registry = registry_of(RefusalCollector(lambda: counter))
    assert by_label(
        parse(generate_latest(registry).decode()), "abasto_mqtt_refused_publishes_total", "user"
    ) == {
        "store-S1": 2,
        "store-S3": 1,
    }
    with log.open("a") as fh:
        fh.write(line.format(u="store-S3"))
    refused = by_label(
        parse(generate_latest(registry).decode()), "abasto_mqtt_refused_publishes_total", "user"
    )
    assert refused["store-S3"] == 2


async def test_endpoint_serves_the_registry_on_the_event_loop() -> None:
    eng = busy_engine()
    registry = registry_of(ProcessorCollector(lambda: eng.metrics))
    async with serve_metrics(registry, "127.0.0.1", 0) as port, httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert parse(r.text)[("abasto_events_received_total", ())] == eng.metrics.received
        eng.process("pos", b"x")
        again = parse((await http.get(f"http://127.0.0.1:{port}/metrics?x=1")).text)
        assert again[("abasto_events_received_total", ())] == eng.metrics.received
        assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404
        assert (await http.post(f"http://127.0.0.1:{port}/metrics")).status_code == 405
        with pytest.raises(PortInUseError, match=str(port)):
            async with serve_metrics(registry, "127.0.0.1", port):
                pass
    with socket.socket() as sock, pytest.raises(OSError):  # closed with the block
        sock.settimeout(1)
        sock.connect(("127.0.0.1", port))

"""Render a demo result: a rich terminal report and a self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from abasto.demo.result import DemoResult


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _minutes(value: float | None) -> str:
    if value is None:
        return "n/a"
    hours, minutes = divmod(round(value), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def render_terminal(result: DemoResult, console: Console) -> None:
    s = result.score
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "world",
        f"seed {result.seed}, scale {result.scale:g}: {result.stores} stores x "
        f"{result.skus} SKUs, {result.history_days} days of history, live day {result.live_day}",
    )
    head.add_row("true stockouts (live day)", str(s.true_stockouts))
    head.add_row(
        "alerts raised",
        f"{s.alerts} ({s.true_positive_alerts} point to a real episode, "
        f"{s.alerts - s.true_positive_alerts} false positives)",
    )
    head.add_row("precision", _pct(s.precision))
    head.add_row(
        "recall (warned before the stockout)",
        f"{_pct(s.recall)}  ({s.warned} warned, {s.late} alerted late, {s.missed} missed)",
    )
    head.add_row(
        "lead time",
        f"median {_minutes(s.lead_time_minutes_median)} "
        f"(p25 {_minutes(s.lead_time_minutes_p25)}, p75 {_minutes(s.lead_time_minutes_p75)})",
    )
    head.add_row(
        "device events",
        f"{result.events_published:,} published over MQTT "
        f"({result.mqtt_publish_per_second:,.0f}/s), {result.events_accepted:,} accepted, "
        f"{result.events_rejected:,} dead-lettered, {result.events_duplicate:,} duplicates",
    )
    head.add_row("processor rate", f"{result.events_per_second:,.0f} events/s")
    if result.backtest:
        head.add_row("model backtest", ", ".join(f"{k} {v:.3f}" for k, v in result.backtest.items()))
    if result.notifications:
        head.add_row("notifications", ", ".join(f"{k}: {v}" for k, v in result.notifications.items()))
    console.print(Panel(head, title="abasto demo — gaseosas SA stockout early warning", expand=False))

    if result.alert_rows:
        t = Table(title="First alerts (local time)", show_lines=False)
        for col in (
            "raised",
            "store",
            "sku",
            "on hand",
            "exp/obs u/h",
            "runs out",
            "next delivery",
            "outcome",
        ):
            t.add_column(col)
        for row in result.alert_rows[:12]:
            t.add_row(
                *(
                    str(row[k])
                    for k in (
                        "raised",
                        "store",
                        "sku",
                        "on_hand",
                        "velocity",
                        "runs_out",
                        "next_delivery",
                        "outcome",
                    )
                )
            )
        console.print(t)

    if result.lakehouse:
        console.print(_lakehouse_table(result.lakehouse))

    steps = Table(title="Steps")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    steps.add_column("detail")
    for st in result.steps:
        steps.add_row(st.name, f"{st.seconds:.1f}", st.detail)
    console.print(steps)

    where = Table(title="Where things are")
    where.add_column("artefact")
    where.add_column("location")
    for name, location in result.artefacts.items():
        where.add_row(name, location)
    console.print(where)


def _lakehouse_table(lake: dict[str, Any]) -> Table:
    q = lake["cdc_quality"]
    t = Table(title="Lakehouse: device tables and data quality", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    d = lake["delivery"]
    t.add_row(
        "raw device events",
        f"{d['rows_written']:,} rows in {d['files_written']} Parquet files "
        f"({d['messages']:,} stream messages)",
    )
    t.add_row("curated.sales_by_hour", f"{lake['sales_by_hour_rows']:,} rows")
    t.add_row("curated.stock_readings", f"{lake['stock_readings_rows']:,} rows")
    check = "[green]match[/]" if lake["units_match"] else "[red]MISMATCH[/]"
    t.add_row(
        "units sold (live day)",
        f"{lake['units_sold_sales_by_hour']:,} in sales_by_hour, {lake['units_sent_by_devices']:,} "
        f"sent by the devices: {check}",
    )
    rules = ", ".join(f"{rule} {n}" for rule, n in q["failures"].items()) or "none"
    t.add_row(
        "CDC curate quality",
        f"{q['rows_checked']:,} rows checked in {q['tables']} tables, {q['rows_quarantined']} quarantined "
        f"(by rule: {rules}), {q['unreadable_files']} unreadable files",
    )
    t.add_row("curated.quarantine", f"{lake['quarantine_rows']:,} rows")
    return t


def write_html(result: DemoResult, path: Path) -> Path:
    env = Environment(
        loader=PackageLoader("abasto.demo", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    env.filters["pct"] = _pct
    env.filters["minutes"] = _minutes
    html = env.get_template("report.html.j2").render(r=result, s=result.score)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path

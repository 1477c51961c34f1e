"""Alert texts for the bottler's staff: Spanish (default) and English.

Times are shown in the bottler's local time zone; numbers follow the locale (``3,2`` in
Spanish, ``3.2`` in English). Store names and case sizes come from an optional
:class:`AlertDirectory` (the world's ``stores`` and ``skus`` tables); without them the texts
fall back to ids and units.

Example (es)::

    Riesgo de quiebre de stock: COLA-600-NR en Tienda Don Pepe (S0001). Stock estimado 6 u.,
    venta esperada 3,2 u./h vs observada 4,5 u./h; se agotaría hacia las 16:40, próxima
    entrega mar 14 oct 09:00. Pedido sugerido: 48 u. (2 cajas).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from abasto.contracts.alerts import Alert
from abasto.errors import ConfigError
from abasto.settings import Locale

DEFAULT_TZ: Final = "America/Mexico_City"

_WEEKDAYS: Final[dict[str, tuple[str, ...]]] = {
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS: Final[dict[str, tuple[str, ...]]] = {
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str


class AlertDirectory(Protocol):
    """Looks up what an alert only names by id."""

    def store_name(self, store_id: str) -> str | None: ...

    def units_per_case(self, sku: str) -> int | None: ...


@dataclass(frozen=True)
class StaticDirectory:
    """An :class:`AlertDirectory` over plain mappings (e.g. built from the world's tables)."""

    store_names: Mapping[str, str] = field(default_factory=dict)
    case_sizes: Mapping[str, int] = field(default_factory=dict)

    def store_name(self, store_id: str) -> str | None:
        return self.store_names.get(store_id)

    def units_per_case(self, sku: str) -> int | None:
        return self.case_sizes.get(sku)


def resolve_tz(tz: tzinfo | str) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}") from exc


# --- locale formatting ---------------------------------------------------------------------------


def format_number(value: float, locale: Locale, decimals: int = 0) -> str:
    """``1234.5`` → es ``1234,5`` / ``12.345,5``; en ``1,234.5``.

    Spanish groups thousands with ``.`` only from five integer digits (CLDR/RAE usage).
    """
    text = f"{abs(value):,.{decimals}f}"
    integer, _, fraction = text.partition(".")
    sign = "-" if value < 0 and float(text.replace(",", "")) != 0 else ""
    if locale == "es":
        digits = integer.replace(",", "")
        integer = integer.replace(",", ".") if len(digits) >= 5 else digits
        return sign + integer + ("," + fraction if fraction else "")
    return sign + text


def format_percent(ratio: float, locale: Locale) -> str:
    number = format_number(ratio * 100, locale, 0)
    return f"{number} %" if locale == "es" else f"{number}%"


def format_time(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")


def format_day_time(moment: datetime, tz: tzinfo, locale: Locale) -> str:
    """``mar 14 oct 09:00`` / ``Tue 14 Oct 09:00`` in ``tz``."""
    local = moment.astimezone(tz)
    weekday = _WEEKDAYS[locale][local.weekday()]
    month = _MONTHS[locale][local.month - 1]
    return f"{weekday} {local.day} {month} {local:%H:%M}"


# --- the texts -----------------------------------------------------------------------------------

_PHRASES: Final[dict[str, dict[str, str]]] = {
    "es": {
        "title.projected_stockout": "Riesgo de quiebre de stock",
        "title.sales_stopped": "Ventas detenidas",
        "subject": "{title} ({risk}): {sku} en {store}",
        "at_named": "en {name} ({id})",
        "at_id": "en el punto de venta {id}",
        "units": "{n} u.",
        "rate": "{n} u./h",
        "runs_out_today": "se agotaría hacia las {time}",
        "runs_out_later": "se agotaría hacia el {day}",
        "runs_out_unknown": "sin hora de quiebre estimada",
        "next_delivery": "próxima entrega {day}",
        "no_delivery": "sin entrega programada",
        "projected_stockout": (
            "{title}: {sku} {at}. Stock estimado {stock}, venta esperada {expected} vs observada "
            "{observed}; {runs_out}, {delivery}. Pedido sugerido: {order}"
        ),
        "sales_stopped": (
            "{title}: {sku} {at}. Venta esperada {expected} vs observada {observed}; posible quiebre "
            "no registrado o falla del equipo. Stock estimado {stock}, {delivery}. "
            "Pedido sugerido: {order}"
        ),
        "case": "caja",
        "cases": "cajas",
        "and": "y",
    },
    "en": {
        "title.projected_stockout": "Stockout risk",
        "title.sales_stopped": "Sales stopped",
        "subject": "{title} ({risk}): {sku} at {store}",
        "at_named": "at {name} ({id})",
        "at_id": "at store {id}",
        "units": "{n} u.",
        "rate": "{n} u./h",
        "runs_out_today": "would run out around {time}",
        "runs_out_later": "would run out around {day}",
        "runs_out_unknown": "no stockout time estimated",
        "next_delivery": "next delivery {day}",
        "no_delivery": "no delivery scheduled",
        "projected_stockout": (
            "{title}: {sku} {at}. Estimated stock {stock}, expected sales {expected} vs observed "
            "{observed}; {runs_out}, {delivery}. Suggested order: {order}"
        ),
        "sales_stopped": (
            "{title}: {sku} {at}. Expected sales {expected} vs observed {observed}; possibly an "
            "unrecorded stockout or a device fault. Estimated stock {stock}, {delivery}. "
            "Suggested order: {order}"
        ),
        "case": "case",
        "cases": "cases",
        "and": "+",
    },
}


def render_alert(
    alert: Alert,
    *,
    locale: Locale = "es",
    tz: tzinfo | str = DEFAULT_TZ,
    store_name: str | None = None,
    units_per_case: int | None = None,
) -> Message:
    """The subject and text of ``alert`` for staff reading ``locale``, times in ``tz``."""
    zone = resolve_tz(tz)
    p = _PHRASES[locale]
    title = p[f"title.{alert.kind}"]
    at = (
        p["at_named"].format(name=store_name, id=alert.store_id)
        if store_name
        else p["at_id"].format(id=alert.store_id)
    )
    values = {
        "title": title,
        "sku": alert.sku,
        "at": at,
        "stock": p["units"].format(n=format_number(max(alert.on_hand_estimate, 0.0), locale, 0)),
        "expected": p["rate"].format(n=format_number(alert.expected_units_per_hour, locale, 1)),
        "observed": p["rate"].format(n=format_number(alert.observed_units_per_hour, locale, 1)),
        "runs_out": _runs_out(alert, zone, locale),
        "delivery": (
            p["next_delivery"].format(day=format_day_time(alert.next_delivery_at, zone, locale))
            if alert.next_delivery_at is not None
            else p["no_delivery"]
        ),
        "order": _order(alert.suggested_qty, units_per_case, locale),
    }
    subject = p["subject"].format(
        title=title,
        risk=format_percent(alert.risk, locale),
        sku=alert.sku,
        store=store_name or alert.store_id,
    )
    text = p[alert.kind].format(**values)
    # the sentence's full stop merges with an abbreviation's ("12 u.", not "12 u..")
    return Message(subject=subject, text=text if text.endswith(".") else text + ".")


def _runs_out(alert: Alert, zone: tzinfo, locale: Locale) -> str:
    p = _PHRASES[locale]
    when = alert.projected_stockout_at
    if when is None:
        return p["runs_out_unknown"]
    if when.astimezone(zone).date() == alert.raised_at.astimezone(zone).date():
        return p["runs_out_today"].format(time=format_time(when, zone))
    return p["runs_out_later"].format(day=format_day_time(when, zone, locale))


def _order(qty: int, units_per_case: int | None, locale: Locale) -> str:
    p = _PHRASES[locale]
    units = p["units"].format(n=format_number(qty, locale, 0))
    if not units_per_case or units_per_case <= 0 or qty < units_per_case:
        return units
    cases, rest = divmod(qty, units_per_case)
    cases_text = f"{format_number(cases, locale, 0)} {p['case'] if cases == 1 else p['cases']}"
    if rest:
        cases_text += f" {p['and']} {p['units'].format(n=format_number(rest, locale, 0))}"
    return f"{units} ({cases_text})"


class MessageRenderer:
    """Renders alerts with a fixed time zone, default locale and directory."""

    def __init__(
        self,
        *,
        locale: Locale = "es",
        tz: tzinfo | str = DEFAULT_TZ,
        directory: AlertDirectory | None = None,
    ) -> None:
        self.locale: Locale = locale
        self.tz = resolve_tz(tz)
        self.directory = directory

    def render(self, alert: Alert, locale: Locale | None = None) -> Message:
        directory = self.directory
        return render_alert(
            alert,
            locale=locale or self.locale,
            tz=self.tz,
            store_name=directory.store_name(alert.store_id) if directory else None,
            units_per_case=directory.units_per_case(alert.sku) if directory else None,
        )

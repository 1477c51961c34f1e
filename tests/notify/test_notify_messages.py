"""Alert texts in Spanish and English: the right numbers, local times and case counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from abasto.contracts.alerts import Alert
from abasto.errors import ConfigError
from abasto.notify import MessageRenderer, StaticDirectory, render_alert
from abasto.notify.messages import format_day_time, format_number

MX = "America/Mexico_City"
DIRECTORY = StaticDirectory({"S0001": "Tienda Don Pepe"}, {"COLA-600-NR": 24})

AlertFactory = Callable[..., Alert]


def test_spanish_text(alert_factory: AlertFactory) -> None:
    message = MessageRenderer(tz=MX, directory=DIRECTORY).render(alert_factory())
    assert message.text == (
        "Riesgo de quiebre de stock: COLA-600-NR en Tienda Don Pepe (S0001). Stock estimado 6 u., "
        "venta esperada 3,2 u./h vs observada 4,5 u./h; se agotaría hacia las 16:40, próxima entrega "
        "mar 14 oct 09:00. Pedido sugerido: 48 u. (2 cajas)."
    )
    assert message.subject == "Riesgo de quiebre de stock (92 %): COLA-600-NR en Tienda Don Pepe"


def test_english_text(alert_factory: AlertFactory) -> None:
    message = MessageRenderer(locale="en", tz=MX, directory=DIRECTORY).render(alert_factory())
    assert message.text == (
        "Stockout risk: COLA-600-NR at Tienda Don Pepe (S0001). Estimated stock 6 u., expected sales "
        "3.2 u./h vs observed 4.5 u./h; would run out around 16:40, next delivery Tue 14 Oct 09:00. "
        "Suggested order: 48 u. (2 cases)."
    )
    assert message.subject == "Stockout risk (92%): COLA-600-NR at Tienda Don Pepe"


def test_renderer_locale_can_be_overridden_per_call(alert_factory: AlertFactory) -> None:
    renderer = MessageRenderer(tz=MX)
    assert renderer.render(alert_factory(), "en").text.startswith(
        "Stockout risk: COLA-600-NR at store S0001."
    )
    assert renderer.render(alert_factory()).text.startswith("Riesgo de quiebre de stock: COLA-600-NR en el")


def test_times_follow_the_time_zone(alert_factory: AlertFactory) -> None:
    text = render_alert(alert_factory(), tz="UTC").text
    assert "se agotaría hacia las 22:40" in text
    assert "próxima entrega mar 14 oct 15:00" in text
    text = render_alert(alert_factory(), tz="Asia/Tokyo", locale="en").text  # already the 14th there
    assert "would run out around 07:40" in text
    assert "next delivery Wed 15 Oct 00:00" in text


def test_stockout_on_a_later_day_names_the_day(alert_factory: AlertFactory) -> None:
    alert = alert_factory(projected_stockout_at=datetime(2025, 10, 14, 14, 10, tzinfo=UTC))
    assert "se agotaría hacia el mar 14 oct 08:10," in render_alert(alert, tz=MX).text
    assert "would run out around Tue 14 Oct 08:10," in render_alert(alert, tz=MX, locale="en").text


@pytest.mark.parametrize(
    ("overrides", "es", "en"),
    [
        ({"projected_stockout_at": None}, "sin hora de quiebre estimada", "no stockout time estimated"),
        ({"next_delivery_at": None}, "sin entrega programada.", "no delivery scheduled."),
        (
            {"suggested_qty": 50},
            "Pedido sugerido: 50 u. (2 cajas y 2 u.).",
            "Suggested order: 50 u. (2 cases + 2 u.).",
        ),
        ({"suggested_qty": 24}, "Pedido sugerido: 24 u. (1 caja).", "Suggested order: 24 u. (1 case)."),
        ({"suggested_qty": 12}, "Pedido sugerido: 12 u.", "Suggested order: 12 u."),
        ({"suggested_qty": 24000}, "Pedido sugerido: 24.000 u. (1000 cajas).", "24,000 u. (1,000 cases)"),
        ({"on_hand_estimate": -0.4}, "Stock estimado 0 u.,", "Estimated stock 0 u.,"),
        ({"expected_units_per_hour": 1234.56}, "venta esperada 1234,6 u./h", "expected sales 1,234.6 u./h"),
        ({"risk": 0.6}, "(60 %)", "(60%)"),
    ],
)
def test_variants(alert_factory: AlertFactory, overrides: dict[str, Any], es: str, en: str) -> None:
    alert = alert_factory(**overrides)
    es_message = MessageRenderer(tz=MX, directory=DIRECTORY).render(alert)
    en_message = MessageRenderer(locale="en", tz=MX, directory=DIRECTORY).render(alert)
    for message in (es_message, en_message):
        assert message.text.endswith(".") and not message.text.endswith("..")
    assert es in es_message.subject + " " + es_message.text
    assert en in en_message.subject + " " + en_message.text


def test_sales_stopped(alert_factory: AlertFactory) -> None:
    alert = alert_factory(kind="sales_stopped", observed_units_per_hour=0.0, projected_stockout_at=None)
    es = render_alert(alert, tz=MX, store_name="Tienda Don Pepe", units_per_case=24)
    assert es.text == (
        "Ventas detenidas: COLA-600-NR en Tienda Don Pepe (S0001). Venta esperada 3,2 u./h vs observada "
        "0,0 u./h; posible quiebre no registrado o falla del equipo. Stock estimado 6 u., próxima entrega "
        "mar 14 oct 09:00. Pedido sugerido: 48 u. (2 cajas)."
    )
    en = render_alert(alert, tz=MX, locale="en")
    assert en.text.startswith(
        "Sales stopped: COLA-600-NR at store S0001. Expected sales 3.2 u./h vs observed 0.0"
    )
    assert en.subject == "Sales stopped (92%): COLA-600-NR at S0001"


@pytest.mark.parametrize(
    ("value", "decimals", "es", "en"),
    [
        (0, 0, "0", "0"),
        (3.25, 1, "3,2", "3.2"),  # round half to even, like Python
        (3.26, 1, "3,3", "3.3"),
        (1234.5, 1, "1234,5", "1,234.5"),
        (12345.5, 1, "12.345,5", "12,345.5"),
        (1234567, 0, "1.234.567", "1,234,567"),
        (-4.5, 1, "-4,5", "-4.5"),
        (-0.04, 1, "0,0", "0.0"),
    ],
)
def test_format_number(value: float, decimals: int, es: str, en: str) -> None:
    assert format_number(value, "es", decimals) == es
    assert format_number(value, "en", decimals) == en


def test_every_month_and_weekday_has_a_spanish_abbreviation() -> None:
    days = [format_day_time(datetime(2025, m, 1, 12, tzinfo=UTC), UTC, "es") for m in range(1, 13)]
    assert [d.split()[2] for d in days] == [
        "ene",
        "feb",
        "mar",
        "abr",
        "may",
        "jun",
        "jul",
        "ago",
        "sept",
        "oct",
        "nov",
        "dic",
    ]
    week = [
        format_day_time(datetime(2025, 10, d, 12, tzinfo=UTC), UTC, "es").split()[0] for d in range(13, 20)
    ]
    assert week == ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"]


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown time zone"):
        MessageRenderer(tz="Mars/Olympus_Mons")

"""Reps' analyses of big customers: one DynamoDB-style document per visit.

Key: ``pk = STORE#<store_id>``, ``sk = VISIT#<local date>#<rep_id>``. The document records what a
field audit captures (DOMAIN.md §5): own-brand shelf share, each cooler's state, the stock counted
per SKU, the order the rep suggests, the SKUs found out of stock and free-text notes (in Spanish,
as a rep in Mexico writes them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from abasto.world.calendar import CHANNELS, is_payday
from abasto.world.parts import Parts
from abasto.world.rng import stream
from abasto.world.timegrid import from_us


@dataclass(frozen=True, slots=True)
class VisitDocument:
    pk: str
    sk: str
    doc: str
    store_id: str
    rep_id: str
    visited_us: int


def visit_documents(parts: Parts) -> list[VisitDocument]:
    out: list[VisitDocument] = []
    g, stores, pairs, skus = parts.grid, parts.stores, parts.pairs, parts.skus
    faults_by_store: dict[int, list[tuple[int, int, int, float]]] = {}
    for f in parts.faults:
        faults_by_store.setdefault(f.store, []).append((f.cooler_no, f.start_hour, f.end_hour, f.temp_c))
    heat = parts.weather.heat
    for v in sorted(parts.sim.visits, key=lambda v: (v.day, v.store)):
        i = v.store
        route = parts.routes[int(stores.route[i])]
        store_id, day = stores.store_id[i], g.date_of(v.day)
        rng = stream(parts.seed, "visit-analysis", i, v.day)
        sku_codes = [skus[int(pairs.sku[p])].sku for p in v.pairs.tolist()]
        stock = dict(zip(sku_codes, v.stock.tolist(), strict=True))
        # coolers hold about two days of cold single-serve stock; the rest waits in the backroom
        single = [k for k, p in enumerate(v.pairs.tolist()) if skus[int(pairs.sku[p])].single_serve]
        cold_stock = sum(int(v.stock[k]) for k in single)
        cold_room = max(1.0, sum(2.0 * float(pairs.base_daily[int(v.pairs[k])]) for k in single))
        fill_pct = 100.0 * min(1.0, cold_stock / cold_room)
        coolers = []
        broken: list[tuple[int, float]] = []
        for c in range(1, int(stores.coolers[i]) + 1):
            fault = next(
                (f for f in faults_by_store.get(i, []) if f[0] == c and f[1] <= v.hour < f[2]), None
            )
            temp = fault[3] if fault else round(float(rng.uniform(2.5, 5.5)), 1)
            if fault:
                broken.append((c, temp))
            coolers.append({
                "cooler_no": c,
                "working": fault is None,
                "temp_c": temp,
                "purity_pct": round(float(rng.uniform(80.0, 100.0)), 1),
                "fill_pct": round(min(100.0, fill_pct * float(rng.uniform(0.9, 1.1))), 1),
            })
        out_of_stock = [k for k, n in stock.items() if n == 0]
        suggested = {k: int(q) for k, q in zip(sku_codes, v.suggested.tolist(), strict=True) if q > 0}
        short_empties = [k for k, flag in zip(sku_codes, v.empties_short.tolist(), strict=True) if flag]
        promos = [
            p.promo_id for p in parts.promos
            if p.region == int(stores.region[i]) and p.start_day <= v.day <= p.end_day
        ]
        notes: list[str] = []
        if out_of_stock:
            notes.append(f"Sin existencia de {', '.join(out_of_stock)} al momento de la visita")
        notes.extend(
            f"Refrigerador {c} sin enfriar ({t:.1f} °C), se reporta a servicio técnico" for c, t in broken
        )
        if v.day + 1 < heat.shape[1] and heat[int(stores.region[i]), v.day + 1] > 0.3:
            notes.append("Pronóstico de calor: se sugiere subir el pedido de agua y 600 ml")
        if promos:
            notes.append(f"Promoción vigente ({', '.join(promos)}): asegurar exhibición y existencia")
        if any(is_payday(g.date_of(v.day + k)) for k in (0, 1, 2)):
            notes.append("Se acerca la quincena: reforzar pedido")
        if short_empties:
            notes.append(f"El cliente no tiene envase suficiente para {', '.join(short_empties)}")
        doc = {
            "store_id": store_id,
            "store_name": stores.name[i],
            "channel": CHANNELS[int(stores.channel[i])],
            "route_id": route.route_id,
            "rep_id": route.rep_id,
            "visited_at": _iso(int(g.hour_us[v.hour])),
            "shelf_share_pct": round(
                min(100.0, max(0.0, float(stores.shelf_share[i]) + float(rng.normal(0.0, 3.0)))), 1
            ),
            "coolers": coolers,
            "stock_counts": stock,
            "expected_order": suggested,
            "out_of_stock": out_of_stock,
            "active_promotions": promos,
            "notes": ". ".join(notes) if notes else "Visita sin novedades",
        }
        out.append(
            VisitDocument(
                pk=f"STORE#{store_id}",
                sk=f"VISIT#{day.isoformat()}#{route.rep_id}",
                doc=json.dumps(doc, ensure_ascii=False, sort_keys=True),
                store_id=store_id,
                rep_id=route.rep_id,
                visited_us=int(g.hour_us[v.hour]),
            )
        )
    return out


def _iso(us: int) -> str:
    return from_us(us).isoformat().replace("+00:00", "Z")

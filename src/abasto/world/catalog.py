"""gaseosas SA's SKU catalogue: brands × packs with Mexican shelf prices (MXN).

The first 20 SKUs are hand-ranked by importance (the 600 ml non-returnable cola is the best
seller; the 2.5 L PET and 1.25 L glass returnables are the most demanded family packs, DOMAIN.md
§2). A world with more SKUs takes further brand × pack combinations in a fixed order, so the first
N SKUs are the same whatever N is. Prices follow the KOF ladder in DOMAIN.md [32], ~10 % higher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from abasto.errors import ConfigError

Category = Literal["cola", "flavored", "water", "mineral", "juice", "tea", "energy", "sports"]

#: Strength of the (saturating) temperature effect per category: water most elastic, juice least.
HEAT_ELASTICITY: Final[dict[str, float]] = {
    "cola": 0.45,
    "flavored": 0.55,
    "water": 1.30,
    "mineral": 0.90,
    "juice": 0.30,
    "tea": 0.80,
    "energy": 0.30,
    "sports": 1.00,
}


@dataclass(frozen=True, slots=True)
class Brand:
    code: str
    name: str
    category: Category
    weight: float
    price_factor: float


@dataclass(frozen=True, slots=True)
class Pack:
    code: str
    label: str
    size_ml: int
    returnable: bool
    units_per_case: int
    base_price: float
    weight: float

    @property
    def single_serve(self) -> bool:
        return self.size_ml <= 600

    @property
    def family(self) -> bool:
        return self.size_ml >= 1250


@dataclass(frozen=True, slots=True)
class Sku:
    sku: str
    brand: str
    category: Category
    pack: str
    size_ml: int
    returnable: bool
    units_per_case: int
    price: float
    #: units share of this SKU in a store that carries the whole catalogue (before channel affinity)
    share: float

    @property
    def single_serve(self) -> bool:
        return self.size_ml <= 600

    @property
    def family(self) -> bool:
        return self.size_ml >= 1250

    @property
    def heat_elasticity(self) -> float:
        return HEAT_ELASTICITY[self.category]


BRANDS: Final[dict[str, Brand]] = {
    b.code: b
    for b in (
        Brand("COLA", "Cola", "cola", 1.00, 1.00),
        Brand("COLAZ", "Cola Sin Azúcar", "cola", 0.25, 1.00),
        Brand("NAR", "Naranja", "flavored", 0.20, 0.95),
        Brand("LIM", "Lima-Limón", "flavored", 0.15, 0.95),
        Brand("MANZ", "Manzana", "flavored", 0.12, 0.95),
        Brand("TOR", "Toronja", "flavored", 0.10, 0.95),
        Brand("AGUA", "Agua Natural", "water", 0.50, 0.62),
        Brand("MIN", "Agua Mineral", "mineral", 0.12, 0.90),
        Brand("JUGO", "Jugo Néctar", "juice", 0.15, 1.05),
        Brand("TE", "Té Helado", "tea", 0.08, 1.05),
        Brand("ENER", "Energética", "energy", 0.08, 1.90),
        Brand("ISO", "Isotónica", "sports", 0.10, 1.15),
    )
}

PACKS: Final[dict[str, Pack]] = {
    p.code: p
    for p in (
        Pack("600-NR", "600 ml PET non-returnable", 600, False, 24, 18.0, 1.00),
        Pack("355-CAN", "355 ml can", 355, False, 24, 18.0, 0.30),
        Pack("500-RETG", "500 ml glass returnable", 500, True, 24, 15.0, 0.25),
        Pack("235-RETG", "235 ml glass returnable", 235, True, 24, 10.0, 0.12),
        Pack("413-NR", "413 ml PET non-returnable", 413, False, 24, 18.0, 0.15),
        Pack("473-CAN", "473 ml can", 473, False, 24, 22.0, 0.10),
        Pack("500-NR", "500 ml PET non-returnable", 500, False, 24, 16.0, 0.20),
        Pack("1000-NR", "1 L PET non-returnable", 1000, False, 12, 22.0, 0.20),
        Pack("1250-RETG", "1.25 L glass returnable", 1250, True, 12, 20.0, 0.35),
        Pack("1500-NR", "1.5 L PET non-returnable", 1500, False, 12, 26.0, 0.15),
        Pack("2000-NR", "2 L PET non-returnable", 2000, False, 8, 32.0, 0.18),
        Pack("2250-NR", "2.25 L PET non-returnable", 2250, False, 8, 35.0, 0.20),
        Pack("2500-RET", "2.5 L PET returnable", 2500, True, 8, 30.0, 0.55),
        Pack("3000-NR", "3 L PET non-returnable", 3000, False, 6, 49.0, 0.30),
    )
}

# (brand, pack, units share, shelf price MXN): the 20 core SKUs, most important first.
_CORE: Final[tuple[tuple[str, str, float, float], ...]] = (
    ("COLA", "600-NR", 0.200, 18.0),
    ("COLA", "2500-RET", 0.110, 30.0),
    ("AGUA", "600-NR", 0.070, 11.0),
    ("COLA", "355-CAN", 0.050, 18.0),
    ("COLA", "3000-NR", 0.060, 49.0),
    ("COLA", "1250-RETG", 0.070, 20.0),
    ("NAR", "600-NR", 0.045, 17.0),
    ("AGUA", "1000-NR", 0.050, 14.0),
    ("COLAZ", "600-NR", 0.045, 18.0),
    ("LIM", "600-NR", 0.035, 17.0),
    ("COLA", "500-RETG", 0.040, 15.0),
    ("JUGO", "413-NR", 0.030, 19.0),
    ("ENER", "473-CAN", 0.025, 35.0),
    ("NAR", "2000-NR", 0.030, 30.0),
    ("COLA", "2250-NR", 0.040, 35.0),
    ("AGUA", "1500-NR", 0.030, 17.0),
    ("MANZ", "600-NR", 0.025, 17.0),
    ("ISO", "500-NR", 0.020, 21.0),
    ("COLA", "235-RETG", 0.020, 10.0),
    ("TE", "600-NR", 0.015, 19.0),
)

# packs each category is sold in, beyond the core list
_CATEGORY_PACKS: Final[dict[str, tuple[str, ...]]] = {
    "cola": ("600-NR", "355-CAN", "500-RETG", "235-RETG", "1250-RETG", "2000-NR", "2500-RET", "3000-NR"),
    "flavored": ("600-NR", "355-CAN", "500-RETG", "2000-NR", "2500-RET", "3000-NR"),
    "water": ("600-NR", "1000-NR", "1500-NR"),
    "mineral": ("355-CAN", "600-NR", "2000-NR"),
    "juice": ("413-NR", "1000-NR"),
    "tea": ("600-NR", "1500-NR"),
    "energy": ("473-CAN", "355-CAN"),
    "sports": ("500-NR", "1000-NR"),
}


def _make(brand: Brand, pack: Pack, share: float, price: float) -> Sku:
    return Sku(
        sku=f"{brand.code}-{pack.code}",
        brand=brand.name,
        category=brand.category,
        pack=pack.label,
        size_ml=pack.size_ml,
        returnable=pack.returnable,
        units_per_case=pack.units_per_case,
        price=price,
        share=share,
    )


def _all_skus() -> list[Sku]:
    out = [_make(BRANDS[b], PACKS[p], share, price) for b, p, share, price in _CORE]
    seen = {s.sku for s in out}
    extras: list[Sku] = []
    for brand in BRANDS.values():
        for pack_code in _CATEGORY_PACKS[brand.category]:
            pack = PACKS[pack_code]
            code = f"{brand.code}-{pack.code}"
            if code in seen:
                continue
            price = round(pack.base_price * brand.price_factor * 2) / 2  # to the half peso
            extras.append(_make(brand, pack, 0.06 * brand.weight * pack.weight, price))
    extras.sort(key=lambda s: (-s.share, s.sku))
    return out + extras


CATALOGUE: Final[tuple[Sku, ...]] = tuple(_all_skus())


def select_skus(n: int) -> tuple[Sku, ...]:
    """The ``n`` most important SKUs of the catalogue (stable prefix)."""
    if not 1 <= n <= len(CATALOGUE):
        raise ConfigError(
            f"world.skus must be between 1 and {len(CATALOGUE)}, got {n}",
            hint="the brand × pack catalogue of gaseosas SA has a fixed size",
        )
    return CATALOGUE[:n]

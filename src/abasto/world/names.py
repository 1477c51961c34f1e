"""Spanish name pools for synthetic people and points of sale (all fictitious)."""

from __future__ import annotations

from typing import Final

import numpy as np

FIRST_NAMES: Final = (
    "José", "María", "Juan", "Guadalupe", "Francisco", "Juana", "Antonio", "Margarita", "Jesús",
    "Verónica", "Miguel", "Leticia", "Pedro", "Rosa", "Alejandro", "Patricia", "Manuel", "Elizabeth",
    "Ricardo", "Gabriela", "Fernando", "Alejandra", "Roberto", "Silvia", "Eduardo", "Adriana",
    "Arturo", "Claudia", "Javier", "Martha", "Sergio", "Araceli", "Jorge", "Norma", "Raúl", "Lucía",
)
SURNAMES: Final = (
    "Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez",
    "Ramírez", "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Reyes", "Jiménez", "Torres",
    "Díaz", "Gutiérrez", "Ruiz", "Mendoza", "Aguilar", "Ortiz", "Moreno", "Castillo", "Romero",
    "Álvarez", "Méndez", "Chávez", "Rivera", "Juárez", "Ramos", "Domínguez", "Herrera", "Medina",
)
_NOUNS: Final = (
    "La Esperanza", "El Güero", "La Bendición", "San Judas", "La Esquina", "El Paraíso", "Los Arcos",
    "La Palma", "El Sol", "La Guadalupana", "El Ahorro", "La Flor", "Don Chucho", "La Fe", "El Pino",
    "Las Rosas", "El Trébol", "La Victoria", "Los Compadres", "El Buen Precio",
)
_PREFIX: Final[dict[str, tuple[str, ...]]] = {
    "tienda": ("Abarrotes", "Miscelánea", "Tienda", "Abarrotes y Cremería"),
    "minisuper": ("Minisúper", "Mini Súper", "Súper Express"),
    "supermarket": ("Súper", "Supermercado", "Autoservicio"),
    "on_premise": ("Fonda", "Taquería", "Cenaduría", "Lonchería", "Restaurante", "Cocina Económica"),
}


def pick(rng: np.random.Generator, pool: tuple[str, ...]) -> str:
    return pool[int(rng.integers(len(pool)))]


def person(rng: np.random.Generator) -> str:
    return f"{pick(rng, FIRST_NAMES)} {pick(rng, SURNAMES)} {pick(rng, SURNAMES)}"


def store_name(rng: np.random.Generator, channel: str, owner: str) -> str:
    prefix = pick(rng, _PREFIX[channel])
    if rng.random() < 0.35:
        first = owner.split(maxsplit=1)[0]
        return f"{prefix} {'Doña' if first in _FEMALE else 'Don'} {first}"
    return f"{prefix} {pick(rng, _NOUNS)}"


def phone(rng: np.random.Generator, area_code: str) -> str:
    digits = 10 - len(area_code)
    number = "".join(str(int(d)) for d in rng.integers(0, 10, digits))
    return f"+52 {area_code} {number[: digits - 4]} {number[digits - 4 :]}"


_FEMALE: Final = frozenset(
    {
        "María", "Guadalupe", "Juana", "Margarita", "Verónica", "Leticia", "Rosa", "Patricia",
        "Elizabeth", "Gabriela", "Alejandra", "Silvia", "Adriana", "Claudia", "Martha", "Araceli",
        "Norma", "Lucía",
    }
)

"""Word lists for generated people, drawn once from Faker's en_US providers and sampled with NumPy.

Faker row by row makes ~1,250 rows/s here; its word lists sampled with NumPy make millions. The
lists (and their weights) are read in Faker's own order, so a world is byte-identical for a given seed
and Faker version.

Nothing generated is a real contact: email domains are the reserved ``example.*`` names, phone
numbers are in the fictional 555-01XX range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

EMAIL_DOMAINS = np.array(
    ["example.com", "example.net", "example.org", "mail.example", "inbox.example"], dtype=object
)
EMAIL_DOMAIN_P = np.array([0.4, 0.2, 0.15, 0.15, 0.1])
CITY_COUNT = 1500
PLACE_VARIANTS = 16  # postcodes per town


def _lower(names: np.ndarray) -> np.ndarray:
    """Lower case, without spaces or apostrophes (for email addresses)."""
    return np.array([str(x).lower().replace(" ", "").replace("'", "") for x in names.tolist()], dtype=object)


def _weighted(mapping: object) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mapping, dict):
        names = list(mapping)
        weights = np.array([float(mapping[k]) for k in names])
    else:
        names = list(mapping)  # type: ignore[call-overload]
        weights = np.ones(len(names))
    return np.array(names, dtype=object), weights / weights.sum()


@dataclass(frozen=True, slots=True)
class Words:
    """Everything the generator samples from."""

    first_female: np.ndarray
    first_female_p: np.ndarray
    first_male: np.ndarray
    first_male_p: np.ndarray
    last: np.ndarray
    last_p: np.ndarray
    first_female_lower: np.ndarray  # for email addresses
    first_male_lower: np.ndarray
    last_lower: np.ndarray
    street_suffixes: np.ndarray
    street_suffixes_sep: np.ndarray  # " Street, " ...: ready to concatenate
    cities: np.ndarray  # "Northville, OH"
    city_zip_lo: np.ndarray
    city_zip_hi: np.ndarray
    city_p: np.ndarray
    places: np.ndarray  # "Northville, OH 43215": PLACE_VARIANTS postcodes per town, town-major


@cache
def words() -> Words:
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    ff, ffp = _weighted(Person.first_names_female)
    fm, fmp = _weighted(Person.first_names_male)
    last, lastp = _weighted(Person.last_names)
    suffixes = np.array(list(Address.street_suffixes), dtype=object)
    states = [s for s in Address.states_abbr if s in Address.states_postcode]
    # A fixed pool of towns, built with its own generator so it never depends on the world's seed.
    rng = np.random.default_rng(20_251_101)
    prefixes = list(Address.city_prefixes)
    city_suffixes = list(Address.city_suffixes)
    stems = list(Person.last_names)[:400]
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < CITY_COUNT:
        stem = stems[int(rng.integers(len(stems)))]
        style = int(rng.integers(3))
        if style == 0:
            town = f"{prefixes[int(rng.integers(len(prefixes)))]} {stem}"
        else:
            town = f"{stem}{city_suffixes[int(rng.integers(len(city_suffixes)))]}"
        state = states[int(rng.integers(len(states)))]
        label = f"{town}, {state}"
        if label not in seen:
            seen.add(label)
            names.append(label)
    lo = np.array([Address.states_postcode[n.rsplit(", ", 1)[1]][0] for n in names], dtype=np.int64)
    hi = np.array([Address.states_postcode[n.rsplit(", ", 1)[1]][1] for n in names], dtype=np.int64)
    pop = 1.0 / np.arange(1, CITY_COUNT + 1) ** 0.8  # a few big towns, many small ones
    # each town gets PLACE_VARIANTS postcodes inside its state's range (drawn once, from the town pool's rng)
    zips = rng.integers(np.repeat(lo, PLACE_VARIANTS), np.repeat(hi, PLACE_VARIANTS) + 1)
    places = np.array(
        [
            f"{town} {z:05d}"
            for town, z in zip(np.repeat(names, PLACE_VARIANTS).tolist(), zips.tolist(), strict=True)
        ],
        dtype=object,
    )
    return Words(
        ff,
        ffp,
        fm,
        fmp,
        last,
        lastp,
        _lower(ff),
        _lower(fm),
        _lower(last),
        suffixes,
        np.array([f" {x}, " for x in suffixes.tolist()], dtype=object),
        np.array(names, dtype=object),
        lo,
        hi,
        pop / pop.sum(),
        places,
    )

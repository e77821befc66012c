"""The small fixed vocabularies the simulation draws from, with their popularity weights.

Every string here is plain ASCII without quotes or backslashes, so it can be placed in JSON text as
is; :func:`check_json_safe` enforces that at import.
"""

from __future__ import annotations

import numpy as np

# Destinations, most popular first (weights ~ Zipf).
DESTINATIONS: tuple[str, ...] = (
    "Cancun",
    "Miami",
    "New York",
    "Las Vegas",
    "Toronto",
    "Orlando",
    "Punta Cana",
    "Los Angeles",
    "Vancouver",
    "Paris",
    "London",
    "Montreal",
    "Honolulu",
    "Rome",
    "Barcelona",
    "San Francisco",
    "Chicago",
    "Nassau",
    "Lisbon",
    "Tokyo",
    "Calgary",
    "Boston",
    "Havana",
    "Reykjavik",
)
DESTINATION_WEIGHTS = 1.0 / np.arange(1, len(DESTINATIONS) + 1) ** 0.8

# Query templates as (prefix, suffix) around the destination, the product each one is after
# (None: any), and how often people type it.
QUERY_TEMPLATES: tuple[tuple[str, str, str | None], ...] = (
    ("cheap flights to ", "", "flight"),
    ("hotels in ", "", "hotel"),
    ("vacation packages ", "", "package"),
    ("", " deals", None),
    ("car rental ", "", "car"),
    ("all inclusive ", "", "package"),
    ("flights ", " next weekend", "flight"),
    ("", " hotel downtown", "hotel"),
)
QUERY_WEIGHTS = np.array([0.24, 0.22, 0.12, 0.12, 0.08, 0.10, 0.06, 0.06])

# Products: the result types a click can land on, with a price model (median CAD, log-sigma),
# the commission rate the business earns on a booking, and the providers selling them.
PRODUCT_TYPES: tuple[str, ...] = ("flight", "hotel", "package", "car")
PRODUCT_PREFIX: tuple[str, ...] = ("flt", "htl", "pkg", "car")
PRICE_MEDIAN = np.array([420.0, 190.0, 1450.0, 75.0])
PRICE_SIGMA = np.array([0.45, 0.50, 0.40, 0.35])
COMMISSION_RATE = np.array([0.03, 0.12, 0.08, 0.10])
PROVIDERS: tuple[tuple[str, ...], ...] = (
    ("Air Canada", "WestJet", "Delta", "United", "Porter"),
    ("Marriott", "Hilton", "Booking.com", "Expedia", "Airbnb"),
    ("Sunwing", "Air Transat Vacations", "Expedia", "WestJet Vacations"),
    ("Hertz", "Avis", "Enterprise"),
)
CURRENCY = "CAD"

PLATFORM_DEVICES: tuple[tuple[str, str], ...] = (
    ("web", "desktop"),
    ("web", "mobile"),
    ("web", "tablet"),
    ("ios", "mobile"),
    ("ios", "tablet"),
    ("android", "mobile"),
    ("android", "tablet"),
)
PLATFORM_DEVICE_WEIGHTS = np.array([0.38, 0.10, 0.04, 0.22, 0.05, 0.18, 0.03])

GEOS: tuple[tuple[str, str], ...] = (
    ("CA", "Toronto"),
    ("CA", "Montreal"),
    ("CA", "Vancouver"),
    ("CA", "Calgary"),
    ("CA", "Ottawa"),
    ("US", "New York"),
    ("US", "Chicago"),
    ("US", "Los Angeles"),
    ("US", "Boston"),
    ("US", "Seattle"),
    ("GB", "London"),
    ("FR", "Paris"),
    ("DE", "Berlin"),
    ("MX", "Mexico City"),
    ("AU", "Sydney"),
)
GEO_WEIGHTS = np.array(
    [0.18, 0.09, 0.08, 0.05, 0.04, 0.10, 0.05, 0.06, 0.03, 0.03, 0.08, 0.07, 0.05, 0.05, 0.04]
)

# Marketing channels: (utm_source, utm_campaign); None is JSON null (direct or untagged traffic).
CHANNELS: tuple[tuple[str | None, str | None], ...] = (
    ("google", "brand_search"),
    ("google", "summer_sale"),
    ("google", "winter_escape"),
    ("facebook", "retargeting"),
    ("facebook", "summer_sale"),
    ("email", "newsletter"),
    ("email", "abandoned_search"),
    ("affiliate", "partner_deals"),
    ("direct", None),
    (None, None),
)
CHANNEL_WEIGHTS = np.array([0.14, 0.08, 0.06, 0.08, 0.05, 0.06, 0.03, 0.05, 0.20, 0.25])

# Traffic shape, UTC: hour of day (quiet nights, lunch and evening peaks) and day of week
# (Monday first; weekends quieter for search, as travel shopping is done from work).
HOUR_WEIGHTS = np.array(
    [0.22, 0.14, 0.09, 0.07, 0.07, 0.10, 0.22, 0.42, 0.66, 0.82, 0.92, 1.00,
     1.08, 1.02, 0.95, 0.93, 0.98, 1.08, 1.22, 1.38, 1.45, 1.30, 0.88, 0.48]
)  # fmt: skip
WEEKDAY_WEIGHTS = np.array([1.00, 1.03, 1.01, 0.98, 0.92, 0.68, 0.76])


def seasonality(day_of_year: np.ndarray) -> np.ndarray:
    """Demand by day of year: a January planning peak, a summer peak, a quiet autumn."""
    doy = day_of_year.astype(float)

    def bump(centre: float, width: float) -> np.ndarray:
        distance = np.abs(doy - centre)
        distance = np.minimum(distance, 365.25 - distance)  # the year wraps around
        return np.exp(-((distance / width) ** 2))

    return 1.0 + 0.30 * bump(15, 30) + 0.35 * bump(190, 40) - 0.20 * bump(290, 40)


def check_json_safe() -> None:
    """Every vocabulary string must be JSON-safe as is (no quote, backslash or control char)."""
    words: list[str] = [*DESTINATIONS, *PRODUCT_TYPES, *PRODUCT_PREFIX, CURRENCY]
    words += [w for t in QUERY_TEMPLATES for w in t[:2]]
    words += [w for group in PROVIDERS for w in group]
    words += [w for pair in PLATFORM_DEVICES + GEOS for w in pair]
    words += [w for pair in CHANNELS for w in pair if w is not None]
    bad = [w for w in words if any(c in w for c in '"\\') or any(ord(c) < 32 for c in w)]
    if bad:
        raise ValueError(f"vocabulary strings not JSON-safe: {bad}")


check_json_safe()

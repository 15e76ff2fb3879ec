"""The synthetic catalog every emulated account bills for: its metrics, R2 regions and name words.

Each :class:`Metric` says how it is measured (per account, per R2 region or per zone), how big a typical
day is, its units and its price. ``data.py`` turns the catalog into one quantity per series and day,
``shapes.py`` into records; ``billing.py`` lists the metrics as the PayGo subscription's components.
Pure data: nothing here computes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One billable metric of the synthetic catalog.

    ``daily_base`` is a typical daily quantity in ``consumed_unit`` (for storage: GB stored, turned into
    GB-month per day). ``unit_price`` is USD per ``pricing_unit``. ``scope`` is ``account``, ``region``
    or ``zone``. ``paygo_unit`` overrides ``ConsumedUnit`` on the v1 PayGo paths (``""``: implicit).
    """

    id: str
    name: str
    family_id: str
    family_name: str
    category: str
    service_name: str
    consumed_unit: str
    pricing_unit: str
    unit_price: float
    scope: str
    daily_base: float
    integer: bool = True
    storage: bool = False
    weekly: bool = True
    paygo_unit: str | None = None


_DEV = "Developer Platform"
_PERF = "Application Performance"
_SEC = "Application Security"

CATALOG: tuple[Metric, ...] = (
    Metric(
        "workers_standard_requests",
        "Workers Standard Requests",
        "workers",
        "Workers",
        _DEV,
        "Workers Standard",
        "Requests",
        "Requests",
        3e-07,
        "account",
        180_000,
    ),
    Metric(
        "workers_standard_cpu_ms",
        "Workers Standard CPU Time",
        "workers",
        "Workers",
        _DEV,
        "Workers Standard CPU",
        "CPU ms",
        "CPU ms",
        2e-08,
        "account",
        2_400_000,
    ),
    Metric(
        "workers_kv_read_operations",
        "Workers KV Read Operations",
        "workers_kv",
        "Workers KV",
        _DEV,
        "Workers KV Reads",
        "Operations",
        "Operations",
        5e-07,
        "account",
        450_000,
    ),
    Metric(
        "durable_objects_requests",
        "Durable Objects Requests",
        "durable_objects",
        "Durable Objects",
        _DEV,
        "Durable Objects Requests",
        "Requests",
        "Requests",
        1.5e-07,
        "account",
        95_000,
    ),
    Metric(
        "d1_rows_read", "D1 Rows Read", "d1", "D1", _DEV, "D1 Rows Read", "Rows", "Rows", 1e-09, "account", 6_000_000
    ),
    Metric(
        "r2_storage_gb_month",
        "R2 Standard Storage",
        "r2",
        "R2",
        _DEV,
        "R2 Storage",
        "GB-month",
        "GB-month",
        0.015,
        "region",
        250.0,
        integer=False,
        storage=True,
        weekly=False,
    ),
    Metric(
        "r2_class_a_operations",
        "R2 Class A Operations",
        "r2",
        "R2",
        _DEV,
        "R2 Class A Operations",
        "Operations",
        "Operations",
        4.5e-06,
        "region",
        25_000,
    ),
    Metric(
        "r2_class_b_operations",
        "R2 Class B Operations",
        "r2",
        "R2",
        _DEV,
        "R2 Class B Operations",
        "Operations",
        "Operations",
        3.6e-07,
        "region",
        300_000,
    ),
    Metric(
        "images_transformations",
        "Images Transformations",
        "images",
        "Images",
        _DEV,
        "Images Transformations",
        "Transformations",
        "Transformations",
        0.0005,
        "zone",
        2_500,
    ),
    Metric(
        "images_delivered",
        "Images Delivered",
        "images",
        "Images",
        _DEV,
        "Images Delivered",
        "Images",
        "Images",
        1e-05,
        "account",
        60_000,
    ),
    Metric(
        "stream_minutes_delivered",
        "Stream Minutes Delivered",
        "stream",
        "Stream",
        _DEV,
        "Stream Minutes Delivered",
        "Minutes",
        "Minutes",
        0.001,
        "account",
        9_000,
    ),
    Metric(
        "argo_smart_routing_data_transfer",
        "Argo Smart Routing Data Transfer",
        "argo",
        "Argo Smart Routing",
        _PERF,
        "Argo Smart Routing",
        "GB",
        "GB",
        0.1,
        "zone",
        40.0,
        integer=False,
    ),
    Metric(
        "load_balancing_dns_queries",
        "Load Balancing DNS Queries",
        "load_balancing",
        "Load Balancing",
        _PERF,
        "Load Balancing",
        "Queries",
        "Queries",
        1e-06,
        "zone",
        150_000,
        paygo_unit="",
    ),
    Metric(
        "rate_limiting_requests",
        "Rate Limiting Requests",
        "rate_limiting",
        "Rate Limiting",
        _SEC,
        "Rate Limiting",
        "Requests",
        "Requests",
        5e-06,
        "zone",
        70_000,
    ),
)

METRICS_BY_ID = {metric.id: metric for metric in CATALOG}

REGIONS: tuple[tuple[str, str], ...] = (
    ("WNAM", "Western North America"),
    ("ENAM", "Eastern North America"),
    ("WEUR", "Western Europe"),
    ("EEUR", "Eastern Europe"),
    ("APAC", "Asia-Pacific"),
    ("OC", "Oceania"),
)

ZONE_WORDS = (
    "example",
    "shop",
    "blog",
    "static",
    "media",
    "status",
    "docs",
    "app",
    "cdn",
    "api",
    "store",
    "news",
    "portal",
    "assets",
    "files",
    "play",
    "learn",
    "market",
    "travel",
    "photos",
)
ZONE_TLDS = ("com", "net", "org", "io", "dev", "app", "co", "eu")
ACCOUNT_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Vandelay")

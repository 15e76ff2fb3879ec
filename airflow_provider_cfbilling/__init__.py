"""Apache Airflow provider for Cloudflare billing data (PayGo usage, v2 FOCUS usage, billing profile)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

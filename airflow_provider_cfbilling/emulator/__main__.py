"""Entry point for ``python -m airflow_provider_cfbilling.emulator`` (see ``cli.py``)."""

from __future__ import annotations

import sys

from airflow_provider_cfbilling.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())

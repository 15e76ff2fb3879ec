"""Walking a paginated endpoint (``page``/``per_page``, Cloudflare's V4 page pagination) safely.

Cloudflare's SDK stops only at an empty page, so a server that keeps answering would make it loop
forever. Here the walk also stops at the server's ``total_pages``, refuses a page that repeats the
one before it (a server that ignores ``page``), and gives up after ``max_pages`` with an error that
says so, never silently truncating.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_cfbilling.exceptions import CloudflareRequestError
from airflow_provider_cfbilling.hooks.transport import _as_list, _Body, _Call


def paginate(
    run: Callable[[_Call], _Body],
    path: str,
    endpoint: str,
    per_page: int,
    extra_params: tuple[tuple[str, str], ...],
    max_pages: int,
) -> Iterator[dict[str, Any]]:
    """The items of every page, one page in memory at a time; ``run`` sends one request (with retries)."""
    previous: str | None = None
    for page in range(1, max_pages + 1):
        params = (("page", str(page)), ("per_page", str(per_page)), *extra_params)
        body = run(_Call(path=path, endpoint=endpoint, params=params))
        body.spool.close()
        items = _as_list(body.result, endpoint)
        if not items:
            return
        digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
        if digest == previous:
            raise CloudflareRequestError(
                f"Page {page} of {endpoint} repeats page {page - 1} item for item: the server does not honour "
                "'page', so the walk stops here instead of looping (nothing was written)",
                endpoint=endpoint,
            )
        previous = digest
        yield from items
        info = body.result_info if isinstance(body.result_info, dict) else {}
        total_pages = info.get("total_pages")
        if isinstance(total_pages, int) and not isinstance(total_pages, bool) and page >= total_pages:
            return
    raise CloudflareRequestError(
        f"{endpoint} still had items after {max_pages} pages of {per_page} and gave no page count: stopped "
        "rather than loop (nothing was written). If the history really is that long, raise max_pages",
        endpoint=endpoint,
    )


__all__ = ["paginate"]

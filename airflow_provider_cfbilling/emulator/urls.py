"""The emulator's URL layout, in one place: where the Cloudflare API and the control API live.

A running emulator serves two trees under its root ``http://127.0.0.1:PORT``:

* :data:`API_PREFIX` (``/client/v4``): the emulated Cloudflare API, what a client uses as its base URL;
* :data:`CONTROL_PREFIX` (``/__emulator__``): the HTTP control API (``control.py``), for tests and
  tools that drive the emulator from another process (``client.py``).

Standard library only and importing nothing of the package, so every other module may use it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

API_PREFIX = "/client/v4"
CONTROL_PREFIX = "/__emulator__"
#: The host names the emulator listens on (it always binds 127.0.0.1).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
#: Client addresses the server and the control API accept.
LOOPBACK_CLIENTS = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` itself or below it."""
    return path == prefix or path.startswith(prefix + "/")


def root_of(url: str) -> str:
    """The server root (``scheme://host:port``) of an emulator URL: its root, its base URL
    (``.../client/v4``) or its control URL (``.../__emulator__``), with or without a trailing slash.
    ValueError for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an emulator URL (expected http://HOST:PORT{API_PREFIX}): {url!r}")
    path = parts.path.rstrip("/")
    if path not in ("", API_PREFIX, CONTROL_PREFIX):
        raise ValueError(f"not an emulator URL: its path must be {API_PREFIX} or {CONTROL_PREFIX}, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"an emulator URL has no query or fragment: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def api_url(root: str) -> str:
    """The base URL of the emulated Cloudflare API below ``root``."""
    return root + API_PREFIX


def control_url(root: str) -> str:
    """The control API's URL below ``root``."""
    return root + CONTROL_PREFIX

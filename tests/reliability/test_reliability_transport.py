"""Transport safety: credentials only travel where they were configured to go, encrypted.

- TLS certificates are verified by default: a loopback HTTPS server with a self-signed
  certificate is refused before any HTTP request reaches it (so no credential is sent), and
  accepted only with the connection's ``extra.verify=false``.
- Plain ``http://`` base URLs are accepted for loopback hosts only, or with an explicit
  ``extra.allow_insecure_http`` opt-out; anything that is not an explicit "yes" keeps them refused.
- Redirects are never followed: the configured host answers 3xx pointing at a second loopback
  server that records every request; the second server must see nothing, whichever status,
  and on the sync (operators, sensor) and async (trigger) paths alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from reliability_support import SECRETS, connection, leaks

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError, CloudflareServerError

EMPTY_ENVELOPE = json.dumps({"success": True, "errors": [], "messages": [], "result": []}).encode()


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP(S) server that records every request (method, path, headers)."""

    daemon_threads = True

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None], tls: ssl.SSLContext | None = None):
        recorder = self
        self.requests: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that walks away mid-handshake is what some tests are about

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)


def answer_envelope(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(EMPTY_ENVELOPE)))
    handler.end_headers()
    handler.wfile.write(EMPTY_ENVELOPE)


@pytest.fixture
def collector() -> Iterator[Recorder]:
    server = Recorder(answer_envelope)
    yield server
    server.close()


def use(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(conn))


def v2_once() -> list[dict[str, Any]]:
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    with CloudflareHook() as hook:
        return list(hook.get_v2_usage(DEFAULT_ACCOUNT_ID, "2025-06-10", "2025-06-11"))


# ---- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_tls_is_verified_by_default_and_nothing_is_sent_to_an_unverified_server(monkeypatch, self_signed):
    server = Recorder(answer_envelope, tls=self_signed)
    try:
        use(monkeypatch, connection(None, host=f"{server.url}/client/v4", max_retries=1))
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        assert CloudflareHook().settings.verify is True
        with pytest.raises(CloudflareServerError, match="CERTIFICATE_VERIFY_FAILED") as raised:
            v2_once()
        assert server.requests == [], "an HTTP request (with its credentials) reached an unverified server"
        assert leaks({"error": str(raised.value)}) == []

        # The explicit opt-out, and only it, talks to that server.
        use(monkeypatch, connection(None, host=f"{server.url}/client/v4", max_retries=1, verify="false"))
        assert v2_once() == []
        assert len(server.requests) == 1
    finally:
        server.close()


# ---- plain http -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8787/client/v4",
        "http://127.8.9.10:8787/client/v4",
        "http://localhost:8787/client/v4",
        "http://[::1]:8787/client/v4",
        "127.0.0.1:8787",
    ],
)
def test_plain_http_is_accepted_for_loopback_hosts(monkeypatch, host):
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    use(monkeypatch, connection(None, host=host))
    assert CloudflareHook().settings.base_url.startswith("http://")


@pytest.mark.parametrize(
    ("host", "opt_out"),
    [
        ("http://api.cloudflare.com/client/v4", None),
        ("http://10.0.0.7/client/v4", None),
        ("http://127.0.0.1.nip.io/client/v4", None),
        ("http://localhost.example.com/client/v4", None),
        ("http://api.internal.example/client/v4", False),
        ("http://api.internal.example/client/v4", "false"),
        ("http://api.internal.example/client/v4", "0"),
        ("http://api.internal.example/client/v4", "no"),
    ],
)
def test_plain_http_to_any_other_host_is_refused_without_an_explicit_opt_out(monkeypatch, host, opt_out):
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    extra = {} if opt_out is None else {"allow_insecure_http": opt_out}
    use(monkeypatch, connection(None, host=host, **extra))
    with pytest.raises(CloudflareInputError) as raised:
        CloudflareHook().settings  # noqa: B018 - reading the settings is the check
    assert raised.value.parameter == "connection cloudflare_default host"
    assert "allow_insecure_http" in raised.value.fix


@pytest.mark.parametrize("opt_out", [True, "true", "yes"])
def test_plain_http_to_another_host_with_the_opt_out(monkeypatch, opt_out):
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    use(monkeypatch, connection(None, host="http://api.internal.example/client/v4", allow_insecure_http=opt_out))
    assert CloudflareHook().settings.base_url == "http://api.internal.example/client/v4"


def test_the_default_base_url_is_https(monkeypatch):
    from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

    conn = connection(None)
    conn.pop("host")
    use(monkeypatch, conn)
    assert CloudflareHook().settings.base_url == "https://api.cloudflare.com/client/v4"


# ---- redirects ------------------------------------------------------------------------------


def redirecting_to(target: str, status: int) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", f"{target}{handler.path}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("scheme", ["token", "global_key"])
def test_redirects_are_never_followed_so_credentials_never_reach_another_host(
    monkeypatch, collector, status, scheme, tmp_path
):
    redirector = Recorder(redirecting_to(collector.url, status))
    try:
        use(monkeypatch, connection(None, scheme=scheme, host=f"{redirector.url}/client/v4"))
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
        from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

        destination = tmp_path / "usage.jsonl"
        operator = CloudflareUsageV2Operator(
            task_id="t", period_start="2025-06-10", period_end="2025-06-11", destination=f"file://{destination}"
        )
        with pytest.raises(CloudflareAPIError, match="redirect") as sync_error:
            operator.execute({})
        assert sync_error.value.status == status

        async def trigger_path() -> Any:
            return await CloudflareHook().aget_v2_usage(DEFAULT_ACCOUNT_ID, "2025-06-10", "2025-06-11")

        with pytest.raises(CloudflareAPIError, match="redirect") as async_error:
            asyncio.run(trigger_path())

        assert collector.requests == [], "a request followed the redirect to another host"
        assert len(redirector.requests) == 2, "a redirect is not retried"
        sent = redirector.requests[0]["headers"]
        assert ("Authorization" in sent) == (scheme == "token"), "the configured host did get the credentials"
        assert not destination.exists() and list(tmp_path.iterdir()) == []
        assert leaks({"sync": str(sync_error.value), "async": str(async_error.value)}) == []
    finally:
        redirector.close()


def test_the_scanner_in_this_module_sees_credentials_in_headers(collector, monkeypatch):
    """The recorder really captures headers: pointed at it directly, it sees the bearer token."""
    use(monkeypatch, connection(None, host=f"{collector.url}/client/v4"))
    assert v2_once() == []
    (found,) = leaks({"headers": json.dumps(collector.requests)})
    assert found.startswith(f"headers: {SECRETS[0][:6]}... in ") and '"Bearer <SECRET>"' in found

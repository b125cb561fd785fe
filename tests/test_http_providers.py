"""Live providers against a real HTTP server on 127.0.0.1: recorded responses, hand-made ones, faults.

The recorded responses are read from ../shared/data/api (never copied here); tests needing them skip
when it is absent. Every fault test asserts the documented outcome and, only as a termination check,
that it ended within a generous bound. No secret may appear in any log record, exception or repr: an
autouse fixture checks every captured record at DEBUG.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import io
import json
import logging
import math
import os
import re
import time
from email.utils import formatdate

import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file
from http_server import LoopbackServer, Reply, closed_port_url
from hypothesis import HealthCheck, given, settings, strategies as st

from research_lib.core.chain import NY, ChainError, ResearchLibError
from research_lib.data.sources import base, detect_format, polygon, read_chain, tradier
from research_lib.data.sources.cboe_json import CboeProvider, cboe_symbol, load_cboe_json, parse_cboe_chain
from research_lib.data.sources.http import (
    BUDGET_ENV,
    DEFAULT_TIME_BUDGET,
    HttpClient,
    MissingCredentialsError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderOfflineError,
    ProviderRateLimitError,
    ProviderRedirectError,
    ProviderResponseError,
    ProviderTimeoutError,
    redact,
    strip_secret_params,
)
from research_lib.data.sources.polygon import PolygonProvider
from research_lib.data.sources.tradier import TradierProvider
from research_lib.data.sources.tradingvol import TradingVolatilityProvider

API = SHARED_DATA / "api"
CBOE = API / "cboe"
TRADIER = API / "tradier"
POLYGON = API / "polygon"
SECRET = "SECRET-TOKEN-123"
CBOE_PATH = "/api/global/delayed_quotes/options/{}.json"
#: Termination bound for fault tests (not a performance claim).
BOUND = 10.0


# ------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog, monkeypatch):
    """Capture everything at DEBUG; after the test, no record may hold the secret.

    Loopback traffic must not go through a proxy configured in the environment.
    """
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        assert SECRET not in record.getMessage(), f"secret leaked in a {record.name} log record"
        assert SECRET not in (record.exc_text or "")
    assert SECRET not in caplog.text


@pytest.fixture
def srv():
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def keys(monkeypatch):
    for var in ("TRADIER_TOKEN", "POLYGON_API_KEY", "TRADINGVOL_API_KEY"):
        monkeypatch.setenv(var, SECRET)


class FakeSleep:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def assert_clean(*objects) -> None:
    for obj in objects:
        for text in (str(obj), repr(obj)):
            assert SECRET not in text, f"secret leaked in {type(obj).__name__}: {text}"


def client(url: str, **kw) -> HttpClient:
    opts = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01, "time_budget": 10.0, "secrets": [SECRET]}
    opts.update(kw)
    return HttpClient("test", url, **opts)


def cboe_body(name: str) -> bytes:
    return gzip.decompress(shared_file(CBOE / name).read_bytes())


def cboe_payload(name: str) -> dict:
    return json.loads(cboe_body(name))


def fails(exc_type, fn, *args, **kwargs):
    """Run ``fn``; assert it raises ``exc_type`` within BOUND seconds; return (exception, seconds)."""
    t0 = time.monotonic()
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    elapsed = time.monotonic() - t0
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    assert_clean(info.value)
    return info.value, elapsed


# ------------------------------------------------------------------------------------------------
# redaction


def test_redact_hides_plain_and_url_encoded_secrets():
    secret = "k y/+="
    text = f"a {secret} b k%20y%2F%2B%3D c k+y%2F%2B%3D"
    assert redact(text, [secret, "", None]) == "a *** b *** c ***"
    assert redact("nothing here", []) == "nothing here"
    url = "https://h/p?symbol=SPY&apiKey=abc&username=me&limit=5"
    assert strip_secret_params(url) == "https://h/p?symbol=SPY&apiKey=***&username=***&limit=5"
    assert strip_secret_params("https://h/p") == "https://h/p"


def test_client_repr_and_path_guard():
    c = client("http://127.0.0.1:9", headers={"Authorization": f"Bearer {SECRET}"})
    assert "test" in repr(c) and "1 redacted" in repr(c)
    assert_clean(c)
    with pytest.raises(ValueError, match="must start with"):
        c.get_json("https://elsewhere.example/x")
    with pytest.raises(ValueError, match="timeout"):
        HttpClient("t", "http://127.0.0.1:9", timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        HttpClient("t", "http://127.0.0.1:9", max_retries=-1)
    c.close()


def test_secrets_redacted_from_logs_errors_and_httpx_records(srv, caplog):
    srv.route("/boom", Reply(500, "internal error"), Reply(401, {"status": "ERROR", "error": f"bad key {SECRET}"}))
    c = client(srv.url, max_retries=1)
    err, _ = fails(ProviderAuthError, c.get_json, "/boom", {"apiKey": SECRET, "symbol": "SPY"})
    assert "bad key ***" in str(err) and err.endpoint == "/boom" and err.status == 401
    assert [h.query["apiKey"] for h in srv.hits("/boom")] == [SECRET, SECRET]  # the key is sent ...
    ours = [r.getMessage() for r in caplog.records if r.name == "research_lib.http"]
    assert any("apiKey=***" in m and "attempt 1/2" in m for m in ours)  # ... but never logged
    assert any(r.levelno == logging.WARNING and "retrying" in r.getMessage() for r in caplog.records)
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines and all("apiKey=***" in m for m in httpx_lines)
    assert_clean(c)


# ------------------------------------------------------------------------------------------------
# transport faults


def test_connection_refused():
    c = client(closed_port_url(), max_retries=2, sleep=FakeSleep())
    err, _ = fails(ProviderConnectionError, c.get_json, "/x.json")
    assert "connection refused after 3 attempts" in str(err)
    assert err.status is None and c.requests_sent == 3


def test_read_timeout(srv):
    srv.route("/slow", Reply(body={"ok": 1}, delay=3.0))
    c = client(srv.url, timeout=0.3, max_retries=1)
    err, _ = fails(ProviderTimeoutError, c.get_json, "/slow")
    assert "read timeout" in str(err) and "after 2 attempts" in str(err)
    assert len(srv.hits("/slow")) == 2


def test_slow_drip_is_abandoned_per_attempt(srv):
    body = json.dumps({"data": "x" * 200}).encode()
    srv.route("/drip", Reply(body=body, drip=0.05))  # 10 s for the whole body, one byte every 50 ms
    c = client(srv.url, timeout=1.0, attempt_timeout=0.5, max_retries=1)
    err, _ = fails(ProviderTimeoutError, c.get_json, "/drip")
    assert "slow response" in str(err) and "after 2 attempts" in str(err)
    assert len(srv.hits("/drip")) == 2


def test_slow_drip_stops_at_the_time_budget(srv):
    srv.route("/drip", Reply(body=b'{"a": "' + b"x" * 200 + b'"}', drip=0.05))
    c = client(srv.url, timeout=1.0, time_budget=1.0, max_retries=3)
    err, _ = fails(ProviderTimeoutError, c.get_json, "/drip")
    assert "slow response" in str(err) and "would not fit the 1 s budget" in str(err)
    assert len(srv.hits("/drip")) == 1


def test_headers_trickling_in_are_cut_at_the_time_budget(srv):
    """One header byte every 0.2 s (about 20 s of headers): every read succeeds well within the 2 s read
    timeout, so only a deadline on the whole request ends it -- at the 1.5 s budget, not after 20 s."""
    srv.route("/trickle", Reply(body={"ok": 1}, header_drip=0.2))
    c = client(srv.url, timeout=2.0, time_budget=1.5, max_retries=3)
    err, elapsed = fails(ProviderTimeoutError, c.get_json, "/trickle")
    assert "slow response: no complete response headers after 1.5 s" in str(err), str(err)
    assert "after 1 attempt" in str(err) and err.status is None
    assert 1.4 <= elapsed < 1.5 + 0.5
    assert len(srv.hits("/trickle")) == 1


def test_attempt_timeout_bounds_trickling_headers_then_retries(srv):
    srv.route("/trickle", Reply(body={"ok": 1}, header_drip=0.2))
    c = client(srv.url, timeout=2.0, attempt_timeout=0.6, time_budget=5.0, max_retries=1, sleep=FakeSleep())
    err, elapsed = fails(ProviderTimeoutError, c.get_json, "/trickle")
    assert "no complete response headers after 0.6 s" in str(err) and "after 2 attempts" in str(err)
    assert elapsed < 2 * 0.6 + 0.5 and len(srv.hits("/trickle")) == 2


def test_a_body_trickling_after_quick_headers_is_cut_at_the_budget(srv):
    srv.route("/drip", Reply(body=b'{"a": "' + b"x" * 400 + b'"}', drip=0.2))  # 80 s of body
    c = client(srv.url, timeout=2.0, time_budget=1.0, max_retries=0)
    err, elapsed = fails(ProviderTimeoutError, c.get_json, "/drip")
    assert re.search(r"slow response: body still incomplete after (0\.9\d|1) s \(\d+ bytes received\)", str(err)), err
    assert elapsed < 1.0 + 0.5


def test_deadline_backend_caps_connect_tls_reads_and_writes():
    """Every operation under an attempt gets min(its own timeout, what is left of the deadline), the TLS
    stream a handshake returns included; past the deadline the operation is refused at once."""
    import httpcore

    from research_lib.data.sources import http as http_mod

    calls = []

    class FakeStream(httpcore.NetworkStream):
        def read(self, max_bytes, timeout=None):
            calls.append(("read", timeout))
            return b"x"

        def write(self, buffer, timeout=None):
            calls.append(("write", timeout))

        def close(self):
            pass

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            calls.append(("tls", timeout))
            return FakeStream()

    class FakeBackend(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            calls.append(("connect", timeout))
            return FakeStream()

    backend = http_mod.DeadlineBackend(FakeBackend())
    stream = backend.connect_tcp("h", 1, timeout=10.0)  # no attempt running: timeouts untouched
    assert calls == [("connect", 10.0)]
    http_mod._DEADLINE.at = time.monotonic() + 0.5
    try:
        tls = backend.connect_tcp("h", 1, timeout=10.0).start_tls(None, "h", timeout=10.0)
        tls.write(b"GET", timeout=10.0)
        tls.read(10, timeout=0.1)  # a tighter own timeout is kept
        tls.read(10, timeout=None)
        assert isinstance(tls, http_mod.DeadlineStream)
        assert [c[0] for c in calls[1:]] == ["connect", "tls", "write", "read", "read"]
        assert all(0 < t <= 0.5 for _, t in calls[1:]) and calls[4][1] == 0.1
        http_mod._DEADLINE.at = time.monotonic() - 0.01
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, timeout=10.0)
        with pytest.raises(httpcore.ConnectTimeout):
            backend.connect_tcp("h", 1, timeout=10.0)
    finally:
        http_mod._DEADLINE.at = None


def test_default_time_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert HttpClient("t", "http://127.0.0.1:9").time_budget == DEFAULT_TIME_BUDGET == 30.0
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    assert HttpClient("t", "http://127.0.0.1:9").time_budget == 2.5
    assert HttpClient("t", "http://127.0.0.1:9", time_budget=7.0).time_budget == 7.0  # explicit wins
    for bad in ("soon", "0", "-1", "inf", "nan"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=f"{BUDGET_ENV}={bad!r}: must be a positive number of seconds"):
            HttpClient("t", "http://127.0.0.1:9")


def test_transfer_cut_short_is_retried_then_reported(srv):
    srv.route("/cut", Reply(body=b'{"a": 1, "b": [1, 2, 3]}', content_length=5000))
    c = client(srv.url, max_retries=1, sleep=FakeSleep())
    err, _ = fails(ProviderConnectionError, c.get_json, "/cut")
    assert "closed the connection mid-response" in str(err) and "after 2 attempts" in str(err)
    assert len(srv.hits("/cut")) == 2


# ------------------------------------------------------------------------------------------------
# redirects: the same origin only


@pytest.fixture
def other_origin():
    """A second loopback server named ``localhost`` on another port: another origin than ``srv``."""
    with LoopbackServer(host="localhost") as server:
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_origin_is_refused_without_contacting_it(srv, other_origin, status):
    path = CBOE_PATH.format("SPY")
    srv.route(path, Reply(status, b"", headers={"Location": f"{other_origin.url}{path}?apiKey={SECRET}"}))
    other_origin.route(path, Reply(body=_tiny_cboe()))
    provider = CboeProvider(base_url=srv.url, sleep=FakeSleep())
    err, _ = fails(ProviderRedirectError, provider.fetch_chain, "SPY")
    assert isinstance(err, ProviderResponseError) and err.status == status
    assert f"HTTP {status} redirect to another origin ({other_origin.url}{path}?apiKey=***)" in str(err)
    assert f"requests stay on {srv.url}" in str(err)
    assert err.location == f"{other_origin.url}{path}?apiKey=***"
    assert other_origin.connections == 0 and len(srv.hits(path)) == 1  # not followed, not retried


@pytest.mark.parametrize("target", ["https://{host}:{port}/x", "http://{host}:1/x", "//localhost:{port}/x"])
def test_scheme_host_and_port_each_make_another_origin(srv, target):
    host, port = srv.url.split("//")[1].split(":")
    srv.route("/r", Reply(302, b"", headers={"Location": target.format(host=host, port=port)}))
    fails(ProviderRedirectError, client(srv.url).get_json, "/r")


def test_same_origin_redirects_are_followed_up_to_three(srv):
    srv.route("/a", Reply(302, b"", headers={"Location": "/b"}))
    srv.route("/b", Reply(307, b"", headers={"Location": f"{srv.url}/c"}))  # absolute, same origin
    srv.route("/c", Reply(body={"ok": 1}))
    c = client(srv.url)
    assert c.get_json("/a") == {"ok": 1}
    assert [len(srv.hits(p)) for p in ("/a", "/b", "/c")] == [1, 1, 1] and c.requests_sent == 3
    srv.route("/loop", Reply(302, b"", headers={"Location": "/loop"}))
    err, _ = fails(ProviderRedirectError, c.get_json, "/loop")
    assert "more than 3 redirects" in str(err) and len(srv.hits("/loop")) == 4


# ------------------------------------------------------------------------------------------------
# HTTP status faults


def test_5xx_then_success_with_backoff(srv):
    html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    srv.route("/flaky", Reply(500, {"error": "oops"}), Reply(502, html, content_type="text/html"),
              Reply(503, "busy", content_type="text/plain"), Reply(body={"ok": True}))
    sleep = FakeSleep()
    c = client(srv.url, max_retries=3, backoff=0.5, sleep=sleep)
    t0 = time.monotonic()
    assert c.get_json("/flaky") == {"ok": True}
    assert time.monotonic() - t0 < BOUND
    assert len(srv.hits("/flaky")) == 4 and c.requests_sent == 4
    assert len(sleep.calls) == 3
    for n, wait in enumerate(sleep.calls, start=1):  # exponential with jitter in [b 2^(n-1) / 2, b 2^(n-1)]
        assert 0.5 * 2 ** (n - 1) / 2 <= wait <= 0.5 * 2 ** (n - 1)


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_retry_count_is_as_configured(srv, max_retries):
    srv.route("/down", Reply(503, "<html><title>Service Unavailable</title></html>", content_type="text/html"))
    sleep = FakeSleep()
    c = client(srv.url, max_retries=max_retries, sleep=sleep)
    err, _ = fails(ProviderError, c.get_json, "/down")
    n = max_retries + 1
    assert f"HTTP 503 after {n} attempt" in str(err) and "HTML error page" in str(err)
    assert err.status == 503 and type(err) is ProviderError
    assert len(srv.hits("/down")) == n and len(sleep.calls) == max_retries


def test_retry_that_would_overrun_the_budget_is_not_slept(srv):
    srv.route("/down", Reply(503, {"error": "busy"}))
    sleep = FakeSleep()
    c = client(srv.url, max_retries=3, backoff=20.0, time_budget=5.0, sleep=sleep)
    err, _ = fails(ProviderError, c.get_json, "/down")
    assert "HTTP 503 after 1 attempt" in str(err) and "would not fit the 5 s budget" in str(err)
    assert sleep.calls == [] and len(srv.hits("/down")) == 1


@pytest.mark.parametrize("status, body, content_type, cls, match", [
    (401, {"status": "ERROR", "request_id": "r1", "error": "Unknown API Key"}, "application/json",
     ProviderAuthError, "HTTP 401: credentials refused: Unknown API Key"),
    (403, "<html><head><title>Access Denied</title></head></html>", "text/html", ProviderAuthError,
     "HTTP 403: credentials refused .HTML error page titled 'Access Denied'"),
    (404, {"message": "no such symbol"}, "application/json", ProviderError, "HTTP 404 .unknown symbol"),
    (400, "bad request", "text/plain", ProviderError, "HTTP 400: bad request"),
])
def test_4xx_is_not_retried(srv, status, body, content_type, cls, match):
    srv.route("/x", Reply(status, body, content_type=content_type))
    c = client(srv.url, sleep=FakeSleep())
    err, _ = fails(cls, c.get_json, "/x", {"apiKey": SECRET})
    assert err.status == status
    assert re.search(match, str(err)), str(err)
    assert len(srv.hits("/x")) == 1


# ------------------------------------------------------------------------------------------------
# rate limits


def test_retry_after_beyond_the_budget_raises_at_once(srv):
    srv.route("/rl", Reply(429, {"message": "slow down"}, headers={"Retry-After": "120"}))
    sleep = FakeSleep()
    c = client(srv.url, time_budget=30.0, sleep=sleep)
    err, elapsed = fails(ProviderRateLimitError, c.get_json, "/rl")
    assert "rate limited: Retry-After 120 s exceeds the 30 s budget" in str(err)
    assert err.status == 429 and sleep.calls == [] and len(srv.hits("/rl")) == 1
    assert elapsed < 2.0


def test_retry_after_http_date_is_honoured(srv):
    now = time.time()
    headers = {"Date": formatdate(now, usegmt=True), "Retry-After": formatdate(now + 5, usegmt=True)}
    srv.route("/rl", Reply(429, "", headers=headers), Reply(body=[1, 2, 3]))
    sleep = FakeSleep()
    c = client(srv.url, sleep=sleep)
    assert c.get_json("/rl") == [1, 2, 3]
    assert len(sleep.calls) == 1 and 4.0 <= sleep.calls[0] <= 6.0


def test_retry_after_really_waits_end_to_end(srv):
    srv.route("/rl", Reply(429, {"error": "rate"}, headers={"Retry-After": "1"}), Reply(body={"ok": 1}))
    c = client(srv.url)  # the real time.sleep
    t0 = time.monotonic()
    assert c.get_json("/rl") == {"ok": 1}
    elapsed = time.monotonic() - t0
    assert 0.95 <= elapsed < BOUND
    assert len(srv.hits("/rl")) == 2


def test_429_without_hints_uses_backoff_and_reports_attempts(srv):
    srv.route("/rl", Reply(429, {"error": "Too Many Requests"}))
    sleep = FakeSleep()
    c = client(srv.url, max_retries=2, sleep=sleep)
    err, _ = fails(ProviderRateLimitError, c.get_json, "/rl")
    assert "rate limited: HTTP 429 after 3 attempts: Too Many Requests" in str(err)
    assert len(sleep.calls) == 2


def _recorded_tradier_headers() -> dict:
    exchange = json.loads(shared_file(TRADIER / "tradier_2024-06-28_PLTR_recorded_exchange.json").read_text())
    headers = dict(exchange["interactions"][0]["response"]["headers"])
    for h in ("Transfer-Encoding", "Connection", "Content-Type"):
        headers.pop(h, None)
    return headers


@pytest.mark.shared_data
def test_tradier_ratelimit_headers_beyond_budget(srv, keys):
    headers = _recorded_tradier_headers()  # Date 16:06:02 GMT, X-Ratelimit-Expiry 58 s later
    headers.update({"X-Ratelimit-Available": "0", "X-Ratelimit-Used": headers["X-Ratelimit-Allowed"]})
    srv.route("/v1/markets/options/expirations", Reply(429, "Quota Violation", content_type="text/plain",
                                                        headers=headers))
    sleep = FakeSleep()
    provider = TradierProvider(base_url=srv.url, time_budget=30.0, sleep=sleep)
    err, _ = fails(ProviderRateLimitError, provider.expirations, "PLTR")
    assert "X-Ratelimit-Expiry in 58 s exceeds the 30 s budget" in str(err)
    assert sleep.calls == [] and len(srv.hits("/v1/markets/options/expirations")) == 1
    assert_clean(provider)


@pytest.mark.shared_data
def test_tradier_ratelimit_headers_wait_within_budget(srv, keys):
    headers = _recorded_tradier_headers()
    headers.update({"X-Ratelimit-Available": "0"})
    body = shared_file(TRADIER / "tradier_2024-06-28_PLTR_expirations.json").read_bytes()
    srv.route("/v1/markets/options/expirations", Reply(429, "", headers=headers), Reply(body=body))
    sleep = FakeSleep()
    provider = TradierProvider(base_url=srv.url, time_budget=120.0, sleep=sleep)
    exps = provider.expirations("PLTR")
    assert sleep.calls == [pytest.approx(58.0, abs=0.01)]
    assert len(exps) == 19 and exps[0] == dt.date(2024, 6, 28)


# ------------------------------------------------------------------------------------------------
# body faults


@pytest.mark.parametrize("body, content_type, match", [
    (b'{"timestamp": "2025-06-08 12:49:38", "data": {"options": [{"option": "SPY2506', "application/json",
     "truncated JSON: the body ends after"),
    (b"hello world", "text/plain", "not JSON"),
    (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>", "text/html",
     "HTML page instead of JSON titled 'Just a moment...'"),
    (b"  <html>maintenance</html>", "application/json", "HTML page instead of JSON"),
    (b"", "application/json", "empty body"),
    (b"\xff\xfe\x00{", "application/json", "not UTF-8"),
])
def test_unusable_bodies_are_named_and_not_retried(srv, body, content_type, match):
    srv.route("/b", Reply(200, body, content_type=content_type))
    c = client(srv.url, sleep=FakeSleep())
    err, _ = fails(ProviderResponseError, c.get_json, "/b")
    assert match in str(err) and err.provider == "test" and err.endpoint == "/b"
    assert len(srv.hits("/b")) == 1


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=utf-8", "text/plain", ""])
def test_valid_json_is_accepted_whatever_the_content_type_says(srv, content_type):
    path = CBOE_PATH.format("SPY")
    srv.route(path, Reply(body=_tiny_cboe(), content_type=content_type))
    snap = CboeProvider(base_url=srv.url).fetch_chain("SPY")
    assert snap.underlying == "SPY" and len(snap.contracts) == 2


def test_an_html_page_served_as_html_is_still_refused(srv):
    srv.route("/p", Reply(200, "<html><head><title>Maintenance</title></head><body>{ back soon }</body></html>",
                          content_type="text/html"))
    srv.route("/e", Reply(500, "<html><title>Oops</title></html>", content_type="text/html"),
              Reply(404, {"error": "no such symbol"}, content_type="text/html"))
    c = client(srv.url, sleep=FakeSleep(), max_retries=1)
    err, _ = fails(ProviderResponseError, c.get_json, "/p")
    assert "HTML page instead of JSON titled 'Maintenance'" in str(err)
    err, _ = fails(ProviderError, c.get_json, "/e")  # a JSON error body served as HTML is read as JSON
    assert "HTTP 404 (unknown symbol or endpoint?): no such symbol" in str(err)


def _recorded_or_synthetic(request, name: str, symbol: str) -> tuple[bytes, str]:
    """(body, Cboe symbol): the recorded response ``name``, or ("synthetic") the synthetic SPX chain's."""
    if name == "synthetic":
        return request.getfixturevalue("synthetic").files["cboe_json"].read_bytes(), "_SPX"
    return cboe_body(name), symbol


def _present(*names: str) -> list[str]:
    return [n for n in names if (CBOE / n).exists()]


@pytest.mark.parametrize("name", ["synthetic", *_present("2025-06-08_SPY_options.json.gz")])
def test_truncated_recorded_cboe_body(srv, name, request):
    body, symbol = _recorded_or_synthetic(request, name, "SPY")
    srv.route(CBOE_PATH.format(symbol), Reply(body=body[: len(body) // 2]))
    provider = CboeProvider(base_url=srv.url, sleep=FakeSleep())
    err, _ = fails(ProviderResponseError, provider.fetch_chain, symbol.lstrip("_"))
    assert f"cboe /api/global/delayed_quotes/options/{symbol}.json: truncated JSON" in str(err)


# ------------------------------------------------------------------------------------------------
# cache


def test_ttl_cache_serves_then_refetches(srv):
    srv.route("/c", Reply(body={"v": 1}))
    clock = FakeClock()
    c = client(srv.url, clock=clock)
    assert c.get_json("/c", {"a": 1}) == {"v": 1}
    clock.now += 59.0
    value = c.get_json("/c", {"a": 1})
    assert value == {"v": 1} and len(srv.hits("/c")) == 1
    value["v"] = 99  # callers cannot corrupt the cache
    assert c.get_json("/c", {"a": 1}) == {"v": 1}
    c.get_json("/c", {"a": 2})  # other parameters: another entry
    assert len(srv.hits("/c")) == 2
    clock.now += 2.0  # 61 s after the first fetch
    c.get_json("/c", {"a": 1})
    assert len(srv.hits("/c")) == 3
    nocache = client(srv.url, cache_ttl=0)
    nocache.get_json("/c")
    nocache.get_json("/c")
    assert len(srv.hits("/c")) == 5


def test_errors_are_not_cached(srv):
    srv.route("/e", Reply(404, {"error": "nope"}), Reply(body={"ok": 1}))
    c = client(srv.url)
    with pytest.raises(ProviderError):
        c.get_json("/e")
    assert c.get_json("/e") == {"ok": 1}


# ------------------------------------------------------------------------------------------------
# Cboe: recorded responses


def test_cboe_symbol_spelling():
    assert cboe_symbol("spx") == "_SPX" and cboe_symbol("XSP") == "_XSP" and cboe_symbol("RUT") == "_RUT"
    assert cboe_symbol("SPY") == "SPY" and cboe_symbol("_NDX") == "_NDX"
    for bad in ("../etc", "", "SP Y", "A" * 20):
        with pytest.raises(ValueError):
            cboe_symbol(bad)


@pytest.mark.shared_data
def test_cboe_spy_recorded(srv):
    srv.route(CBOE_PATH.format("SPY"), Reply(body=cboe_body("2025-06-08_SPY_options.json.gz")))
    snap = CboeProvider(base_url=srv.url).fetch_chain("SPY")
    c = snap.contracts
    assert (snap.underlying, snap.source, snap.spot) == ("SPY", "cboe:SPY", 599.14)
    assert len(c) == 9072 and c["expiration"].nunique() == 32  # none expired: first expiry 06-09
    # "2025-06-08 12:49:38" is UTC: Sunday 08:49 in New York; the prices are Friday 06-06's.
    assert snap.quote_time == pd.Timestamp("2025-06-08 08:49:38", tz=NY)
    assert snap.snapshot_date == dt.date(2025, 6, 6)
    assert set(c["root"]) == {"SPY"} and set(c["settlement"]) == {"PM"}
    assert int(c["gamma"].isna().sum()) == 1054  # Cboe's 4-decimal zeros, 11.6% of 9,072
    assert any("gamma is 0 on 1054 of 9072" in n for n in snap.notes)
    assert not any("dropped" in n for n in snap.notes)
    assert c["last"].isna().sum() == 1321  # last_trade_price 0 / no trade time
    assert srv.hits(CBOE_PATH.format("SPY"))[0].headers["accept"] == "application/json"


@pytest.mark.shared_data
def test_cboe_rut_mixes_am_and_pm_roots_and_drops_the_settled_expiry(srv):
    srv.route(CBOE_PATH.format("_RUT"), Reply(body=cboe_body("2025-06-05_RUT_options.json.gz")))
    snap = CboeProvider(base_url=srv.url).fetch_chain("RUT")  # the provider adds the underscore
    c = snap.contracts
    assert snap.underlying == "RUT" and snap.source == "cboe:RUT"
    assert snap.quote_time == pd.Timestamp("2025-06-04 23:44:39", tz=NY)
    assert len(c) == 7882 - 276
    assert any("dropped 276 of 7882" in n and "2025-06-04" in n for n in snap.notes)
    assert c["expiration"].min() == pd.Timestamp("2025-06-05")
    assert set(c["root"]) == {"RUT", "RUTW"}
    assert set(c.loc[c["root"] == "RUT", "settlement"]) == {"AM"}
    assert set(c.loc[c["root"] == "RUTW", "settlement"]) == {"PM"}
    # same expiry, two roots: the AM monthly and the PM weekly are separate contracts
    both = c.groupby("expiration")["root"].nunique()
    assert (both == 2).any()


def _reordered(payload: dict, order: list[str]) -> dict:
    options = [{k: o[k] for k in order if k in o} | {k: v for k, v in o.items() if k not in order}
               for o in payload["data"]["options"]]
    return {**payload, "data": {**payload["data"], "options": options}}


@pytest.mark.shared_data
def test_cboe_2023_key_order_parses_by_key():
    old = cboe_payload("2023-09-21_RUT_options.json.gz")
    new = cboe_payload("2025-06-05_RUT_options.json.gz")
    old_keys, new_keys = list(old["data"]["options"][0]), list(new["data"]["options"][0])
    assert old_keys != new_keys and set(old_keys) == set(new_keys)  # the documented difference
    snap = parse_cboe_chain(old, source="cboe:RUT")
    again = parse_cboe_chain(_reordered(old, new_keys), source="cboe:RUT")
    backwards = parse_cboe_chain(_reordered(old, old_keys[::-1]), source="cboe:RUT")
    pd.testing.assert_frame_equal(snap.contracts, again.contracts)
    pd.testing.assert_frame_equal(snap.contracts, backwards.contracts)
    c = snap.contracts
    assert len(c) == 6680 - 338 and set(c["root"]) == {"RUT", "RUTW"}
    row = c[(c["root"] == "RUT") & (c["expiration"] == "2023-10-20") & (c["strike"] == 1000) & (c["right"] == "P")]
    assert len(row) == 1
    r = row.iloc[0]
    assert (r["iv"], r["open_interest"], r["delta"], r["ask"]) == (0.6836, 22.0, -0.0004, 0.15)
    assert math.isnan(r["gamma"])  # vendor 0 (rounded) → missing
    assert snap.quote_time == pd.Timestamp("2023-09-20 23:17:42", tz=NY)


RECORDED_CBOE = [
    ("2025-06-08_SPY_options.json.gz", 9072, 32, "SPY", dt.date(2025, 6, 6)),
    ("2025-06-07_QQQ_options.json.gz", 8096, 32, "QQQ", dt.date(2025, 6, 6)),
    ("2025-06-08_IWM_options.json.gz", 4314, 31, "IWM", dt.date(2025, 6, 6)),
    ("2025-06-05_RUT_options.json.gz", 7606, 31, "RUT", dt.date(2025, 6, 4)),
    ("2023-09-21_RUT_options.json.gz", 6342, 25, "RUT", dt.date(2023, 9, 20)),
]


@pytest.mark.parametrize("name, rows, expiries, underlying, day", [
    # the synthetic SPX chain saved as a gzipped response (tests/fixtures.py): every expiry, 0DTE+1..LEAPS
    ("synthetic:spx_synthetic.json.gz", None, 50, "SPX", dt.date(2024, 3, 6)),
    *(case for case in RECORDED_CBOE if (CBOE / case[0]).exists()),
])
def test_cboe_json_file_reader(tmp_path, name, rows, expiries, underlying, day, request):
    if name.startswith("synthetic:"):
        syn = request.getfixturevalue("synthetic")
        path, name, rows = syn.files["cboe_json_gz"], name.split(":", 1)[1], len(syn.chain.contracts)
    else:
        path = shared_file(CBOE / name)
    assert detect_format(path).name == "cboe_json"
    snap = read_chain(path)
    assert (len(snap.contracts), snap.contracts["expiration"].nunique()) == (rows, expiries)
    assert snap.underlying == underlying and snap.snapshot_date == day
    assert snap.source == f"cboe_json:{name}"
    plain = tmp_path / name.removesuffix(".gz")
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    assert detect_format(plain).name == "cboe_json"
    pd.testing.assert_frame_equal(read_chain(plain, date=day).contracts, snap.contracts)


@pytest.mark.parametrize("name", ["synthetic", *_present("2025-06-08_SPY_options.json.gz")])
def test_cboe_json_file_faults(tmp_path, name, request):
    if name == "synthetic":
        path, later = request.getfixturevalue("synthetic").files["cboe_json_gz"], "2024-03-07"
    else:
        path, later = shared_file(CBOE / name), "2025-06-09"
    raw = path.read_bytes()
    cut_gz = tmp_path / "cut.json.gz"
    cut_gz.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ChainError, match="corrupt gzip"):
        load_cboe_json(cut_gz)
    cut = tmp_path / "cut.json"
    cut.write_bytes(gzip.decompress(raw)[:50_000])
    with pytest.raises(ChainError, match="truncated JSON"):
        read_chain(cut)
    with pytest.raises(ChainError, match=f"not {later}"):
        read_chain(path, date=later)


@pytest.mark.parametrize("name", ["synthetic", *_present("2025-06-08_IWM_options.json.gz")])
def test_cboe_provider_uses_the_ttl_cache(srv, name, request):
    body, symbol = _recorded_or_synthetic(request, name, "IWM")
    srv.route(CBOE_PATH.format(symbol), Reply(body=body, gzip=True))
    clock = FakeClock()
    provider = CboeProvider(base_url=srv.url, clock=clock)
    a = provider.fetch_chain(symbol.lstrip("_"))  # served gzip-encoded: httpx decodes
    b = provider.fetch_chain(symbol.lstrip("_"))
    assert len(srv.hits(CBOE_PATH.format(symbol))) == 1
    pd.testing.assert_frame_equal(a.contracts, b.contracts)
    clock.now += 61
    provider.fetch_chain(symbol.lstrip("_"))
    assert len(srv.hits(CBOE_PATH.format(symbol))) == 2


# ------------------------------------------------------------------------------------------------
# Cboe: hand-made responses


def _tiny_cboe(options=None, **top) -> dict:
    opts = options if options is not None else [
        {"option": "SPY250620C00600000", "bid": 1.0, "ask": 1.1, "iv": 0.15, "open_interest": 10.0, "volume": 1.0,
         "delta": 0.5, "gamma": 0.05, "last_trade_price": 1.05, "last_trade_time": "2025-06-06T15:00:00"},
        {"option": "SPY250620P00600000", "bid": 2.0, "ask": 2.2, "iv": 0.16, "open_interest": 20.0, "volume": 0.0,
         "delta": -0.5, "gamma": 0.0, "last_trade_price": 0.0, "last_trade_time": None},
    ]
    payload = {"timestamp": "2025-06-08 12:49:38", "symbol": "SPY",
               "data": {"options": opts, "current_price": 599.14, "symbol": "SPY",
                        "last_trade_time": "2025-06-06T16:00:00"}}
    payload.update(top)
    return payload


@pytest.mark.parametrize("payload, cls, match", [
    ({"timestamp": "2025-06-08 12:49:38", "data": {"current_price": 1.0}}, ProviderResponseError,
     "wrong schema: missing data.options"),
    (_tiny_cboe([]), ProviderResponseError, "empty chain: data.options is an empty list"),
    ([1, 2, 3], ProviderResponseError, "wrong schema: the top level is a list"),
    ({"timestamp": "x"}, ProviderResponseError, "wrong schema: missing data"),
    (_tiny_cboe([{"option": "SPY250620C00600000", "bid": 1.0}]), ProviderResponseError,
     "wrong schema: 1 of 1 options lack 'open_interest'"),
    (_tiny_cboe(timestamp=None), ProviderResponseError, "wrong schema: timestamp is None"),
    (_tiny_cboe(data={"options": [{"option": "X", "open_interest": 1}]}), ProviderResponseError,
     "missing data.current_price"),
    (_tiny_cboe([{"option": "NOT-OCC", "open_interest": 1.0}]), ChainError, "not an OCC option symbol"),
    (_tiny_cboe([{"option": "SPY250620C00600000", "open_interest": -5.0}]), ChainError, "open interest must lie"),
    (_tiny_cboe(symbol="QQQ"), ProviderResponseError, "asked for SPY, the response is for QQQ"),
])
def test_cboe_bad_payloads(srv, payload, cls, match):
    srv.route(CBOE_PATH.format("SPY"), Reply(body=payload))
    provider = CboeProvider(base_url=srv.url)
    err, _ = fails(cls, provider.fetch_chain, "SPY")
    assert match in str(err)
    assert len(srv.hits(CBOE_PATH.format("SPY"))) == 1


def test_cboe_hand_made_details():
    snap = parse_cboe_chain(_tiny_cboe(), source="cboe:SPY")
    c = snap.contracts.set_index("right")
    assert c.loc["C", "last"] == 1.05 and math.isnan(c.loc["P", "last"])  # no trade → NaN, not 0
    assert math.isnan(c.loc["P", "gamma"]) and c.loc["C", "gamma"] == 0.05
    every_settled = _tiny_cboe([{"option": "SPY250606C00600000", "open_interest": 1.0}])
    with pytest.raises(ChainError, match="empty chain: all 1 contracts had settled"):
        parse_cboe_chain(every_settled, source="x")


_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(
    ["option", "bid", "ask", "iv", "open_interest", "volume", "delta", "gamma", "last_trade_price",
     "last_trade_time"]), _values), max_size=4),
    top=st.dictionaries(st.sampled_from(["timestamp", "symbol"]), _values, max_size=2),
    spot=_values)
def test_cboe_parser_fuzz_raises_only_named_errors(mutations, top, spot):
    payload = _tiny_cboe(**top)
    payload["data"]["current_price"] = spot
    for i, key, value in mutations:
        payload["data"]["options"][i][key] = value
    try:
        snap = parse_cboe_chain(payload, source="fuzz")
    except ResearchLibError:
        return
    assert len(snap.contracts) >= 1 and snap.spot > 0


# ------------------------------------------------------------------------------------------------
# credentials


@pytest.mark.parametrize("factory, env", [
    (lambda url: TradierProvider(base_url=url), "TRADIER_TOKEN"),
    (lambda url: PolygonProvider(base_url=url), "POLYGON_API_KEY"),
    (lambda url: TradingVolatilityProvider(base_url=url), "TRADINGVOL_API_KEY"),
])
def test_missing_key_names_the_variable_without_a_request(srv, monkeypatch, factory, env):
    monkeypatch.delenv(env, raising=False)
    err, _ = fails(MissingCredentialsError, factory, srv.url)
    assert f"set the environment variable {env}" in str(err) and err.env_var == env
    assert isinstance(err, ProviderAuthError) and srv.requests == []
    monkeypatch.setenv(env, "   ")
    fails(MissingCredentialsError, factory, srv.url)


# ------------------------------------------------------------------------------------------------
# Tradier


def _tradier_routes(srv, chain_for: dict | None = None) -> None:
    srv.route("/v1/markets/options/expirations",
              Reply(body=shared_file(TRADIER / "tradier_2024-06-28_PLTR_expirations.json").read_bytes()))
    srv.route("/v1/markets/quotes",
              Reply(body=shared_file(TRADIER / "tradier_2024-06-28_PLTR_quotes_greeks.json").read_bytes()))
    recorded = shared_file(TRADIER / "tradier_2024-06-28_PLTR_chain_2026-06-18_greeks.json").read_bytes()
    chains = {"2026-06-18": recorded, **(chain_for or {})}

    def chain(seen):
        return Reply(body=chains.get(seen.query.get("expiration"), {"options": None}))

    srv.route("/v1/markets/options/chains", chain)


@pytest.mark.shared_data
def test_tradier_recorded_chain(srv, keys):
    _tradier_routes(srv)
    provider = TradierProvider(base_url=srv.url)
    snap = provider.fetch_chain("PLTR")
    c = snap.contracts
    assert (snap.underlying, snap.source, snap.spot) == ("PLTR", "tradier:PLTR", 25.5)
    assert len(c) == 22 and set(c["expiration"]) == {pd.Timestamp("2026-06-18")} and set(c["root"]) == {"PLTR"}
    assert snap.quote_time == pd.Timestamp(1719589861696, unit="ms", tz="UTC").tz_convert(NY)
    assert snap.quote_time.strftime("%Y-%m-%d %H:%M:%S") == "2024-06-28 11:51:01"
    assert any("18 expiries returned no contracts" in n for n in snap.notes)  # {"options": null}
    assert any("ORATS greeks updated 2024-06-28 10:58" in n for n in snap.notes)
    put13 = c[(c["strike"] == 13) & (c["right"] == "P")].iloc[0]
    assert (put13["iv"], put13["open_interest"], put13["last"]) == (0.590685, 10.0, 1.31)
    assert put13["gamma"] == pytest.approx(0.00743915619023867)
    chain_hits = srv.hits("/v1/markets/options/chains")
    assert len(chain_hits) == 19 and len(srv.hits("/v1/markets/quotes")) == 1
    for hit in srv.requests:
        assert hit.headers["authorization"] == f"Bearer {SECRET}"
        assert hit.headers["accept"] == "application/json"
    assert {h.query["greeks"] for h in chain_hits} == {"true"}
    assert "includeAllRoots" not in chain_hits[0].query  # only index symbols
    assert_clean(provider, provider.client)


@pytest.mark.shared_data
def test_tradier_collapsed_and_null_results(srv, keys):
    one = json.loads(shared_file(TRADIER / "tradier_2024-06-28_PLTR_chain_2026-06-18_greeks.json").read_text())
    single = {"options": {"option": one["options"]["option"][0]}}
    srv.route("/v1/markets/options/expirations", Reply(body={"expirations": {"date": "2026-06-18"}}))
    _quote = shared_file(TRADIER / "tradier_2024-06-28_PLTR_quotes_greeks.json").read_bytes()
    srv.route("/v1/markets/quotes", Reply(body=_quote))
    srv.route("/v1/markets/options/chains", Reply(body=single))
    provider = TradierProvider(base_url=srv.url)
    assert provider.expirations("PLTR") == [dt.date(2026, 6, 18)]
    assert len(provider.fetch_chain("PLTR").contracts) == 1
    srv.route("/v1/markets/options/chains", Reply(body={"options": None}))
    provider.client.clear_cache()
    err, _ = fails(ProviderResponseError, provider.fetch_chain, "PLTR", expirations=["2026-06-18"])
    assert "empty chain: no contracts for PLTR" in str(err)
    srv.route("/v1/markets/options/expirations", Reply(body={"expirations": None}))
    provider.client.clear_cache()
    assert provider.expirations("PLTR") == []
    err, _ = fails(ProviderResponseError, provider.fetch_chain, "PLTR")
    assert "empty chain: no expirations" in str(err)


def test_tradier_index_chain_includes_all_roots(srv, keys):
    def option(sym, typ, strike, gamma, mid_iv, smv=0.2):
        return {"symbol": sym, "root_symbol": sym[:4].rstrip("0123456789"), "strike": strike,
                "option_type": typ, "bid": 1.0, "ask": 1.2, "last": None, "volume": 0, "open_interest": 5,
                "greeks": {"delta": 0.5, "gamma": gamma, "mid_iv": mid_iv, "smv_vol": smv,
                           "updated_at": "2024-06-28 14:58:59"}}

    rows = [option("SPX240719C05500000", "call", 5500, 0.001, 0.12),  # AM monthly
            option("SPXW240719P05500000", "put", 5500, 0.001, 0.0),   # PM weekly, no mid_iv → smv_vol
            {**option("SPXW240719C05600000", "call", 5600, 0.0, 0.1), "greeks": None}]
    srv.route("/v1/markets/quotes", Reply(body={"quotes": {"quote": {
        "symbol": "SPX", "last": 5460.48, "bid": 0, "ask": 0, "trade_date": 1719589861696, "bid_date": 0,
        "ask_date": 0}}}))
    srv.route("/v1/markets/options/chains", Reply(body={"options": {"option": rows}}))
    snap = TradierProvider(base_url=srv.url).fetch_chain("SPX", expirations=[dt.date(2024, 7, 19)])
    hit = srv.hits("/v1/markets/options/chains")[0]
    assert hit.query["includeAllRoots"] == "true" and hit.query["symbol"] == "SPX"
    c = snap.contracts.set_index("root")
    assert set(c.index) == {"SPX", "SPXW"}
    assert c.loc["SPX", "settlement"] == "AM" and set(c.loc["SPXW", "settlement"]) == {"PM"}
    put = snap.contracts[snap.contracts["right"] == "P"].iloc[0]
    assert put["iv"] == 0.2  # smv_vol fallback
    assert any("smv_vol on 1 contracts" in n for n in snap.notes)
    assert any("1 of 3 contracts came without greeks" in n for n in snap.notes)


@pytest.mark.shared_data
def test_tradier_chain_loop_is_bounded_in_time(srv, keys):
    srv.route("/v1/markets/options/expirations", Reply(body={"expirations": {"date": [
        "2026-06-18", "2026-07-17", "2026-08-21", "2026-09-18"]}}))
    srv.route("/v1/markets/quotes",
              Reply(body=shared_file(TRADIER / "tradier_2024-06-28_PLTR_quotes_greeks.json").read_bytes()))
    srv.route("/v1/markets/options/chains", Reply(body={"options": None}, delay=0.4))
    provider = TradierProvider(base_url=srv.url, chain_budget=0.6, timeout=2.0)
    err, _ = fails(ProviderTimeoutError, provider.fetch_chain, "PLTR")
    assert err.endpoint == "/v1/markets/options/chains"
    assert len(srv.hits("/v1/markets/options/chains")) <= 2


def test_tradier_unknown_symbol_and_bad_token(srv, keys):
    srv.route("/v1/markets/quotes", Reply(body={"quotes": {"unmatched_symbols": {"symbol": "XXXX"}}}))
    provider = TradierProvider(base_url=srv.url)
    err, _ = fails(ProviderResponseError, provider.quote, "XXXX")
    assert "unknown symbol XXXX" in str(err)
    srv.route("/v1/markets/quotes", Reply(401, "Invalid Access Token", content_type="text/plain"))
    provider.client.clear_cache()
    err, _ = fails(ProviderAuthError, provider.quote, "SPY")
    assert "HTTP 401: credentials refused: Invalid Access Token" in str(err)
    assert len(srv.hits("/v1/markets/quotes")) == 2


@pytest.mark.shared_data
def test_tradier_daily_history_recorded(srv, keys):
    srv.route("/v1/markets/history",
              Reply(body=shared_file(TRADIER / "tradier_legacy-2013_AAPL_history.json").read_bytes()))
    provider = TradierProvider(base_url=srv.url)
    bars = provider.daily_history("AAPL", "2012-05-25", dt.date(2013, 6, 10))
    assert list(bars.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert len(bars) == 260 and bars["date"].is_monotonic_increasing
    assert bars["date"].iloc[0] == pd.Timestamp("2012-05-25") and bars["date"].iloc[-1] == pd.Timestamp("2013-06-10")
    assert bars["close"].iloc[0] == pytest.approx(562.29) and bars["volume"].iloc[-1] == 16084149
    hit = srv.hits("/v1/markets/history")[0]
    assert hit.query == {"symbol": "AAPL", "interval": "daily", "start": "2012-05-25", "end": "2013-06-10"}
    srv.route("/v1/markets/history", Reply(body={"history": None}))
    provider.client.clear_cache()
    empty = provider.daily_history("AAPL", "2012-05-25", "2013-06-10")
    assert empty.empty and list(empty.columns) == list(bars.columns)
    srv.route("/v1/markets/history", Reply(body={"history": {"day": {"date": "2013-06-10", "open": 1}}}))
    provider.client.clear_cache()
    err, _ = fails(ProviderResponseError, provider.daily_history, "AAPL", "2013-06-10", "2013-06-10")
    assert "wrong schema: history.day entries lack 'close'" in str(err)


# ------------------------------------------------------------------------------------------------
# Polygon


def _polygon_contract(template: dict, occ: str, *, greeks: bool = True) -> dict:
    r = copy.deepcopy(template)
    r["details"]["ticker"] = f"O:{occ}"
    if not greeks:  # deep in the money: Polygon leaves greeks and IV out
        r.pop("greeks")
        r.pop("implied_volatility")
    return r


@pytest.mark.shared_data
def test_polygon_two_page_chain(srv, keys):
    recorded = json.loads(shared_file(POLYGON / "polygon_clientmock_v3_snapshot_options_AAPL.json").read_text())
    template = recorded["results"][0]
    page1 = {"status": "OK", "request_id": "p1",
             "results": [_polygon_contract(template, f"AAPL230616{r}00{k}000") for r, k in
                         (("C", "150"), ("P", "150"), ("C", "160"))],
             "next_url": f"{srv.url}/v3/snapshot/options/AAPL?cursor=PAGE2"}
    page2 = {"status": "OK", "request_id": "p2",
             "results": [_polygon_contract(template, "AAPL230616C00050000", greeks=False),
                         _polygon_contract(template, "AAPL230616P00160000")]}
    srv.route("/v3/snapshot/options/AAPL", lambda seen: Reply(body=page2 if seen.query.get("cursor") else page1))
    provider = PolygonProvider(base_url=srv.url)
    snap = provider.fetch_chain("AAPL")
    c = snap.contracts
    assert (snap.underlying, snap.source, snap.spot) == ("AAPL", "polygon:AAPL", 159.9606)
    assert len(c) == 5 and any("5 results in 2 pages" in n for n in snap.notes)
    deep = c[(c["strike"] == 50) & (c["right"] == "C")].iloc[0]
    assert math.isnan(deep["gamma"]) and math.isnan(deep["iv"]) and math.isnan(deep["delta"])
    assert c["gamma"].notna().sum() == 4
    assert snap.quote_time == pd.Timestamp(1651254263172073152, unit="ns", tz="UTC").tz_convert(NY)
    hits = srv.hits("/v3/snapshot/options/AAPL")
    assert len(hits) == 2
    assert all(h.query["apiKey"] == SECRET for h in hits)  # the key on every page ...
    assert hits[0].query["limit"] == "250" and hits[1].query == {"cursor": "PAGE2", "apiKey": SECRET}
    assert_clean(provider, snap.notes)  # ... and nowhere else


@pytest.mark.shared_data
def test_polygon_recorded_single_contract_snapshot(srv, keys):
    srv.route("/v3/snapshot/options/AAPL",
              Reply(body=shared_file(POLYGON / "polygon_clientmock_v3_snapshot_options_AAPL.json").read_bytes()))
    snap = PolygonProvider(base_url=srv.url).fetch_chain("AAPL")
    row = snap.contracts.iloc[0]
    assert len(snap.contracts) == 1
    assert (row["root"], row["strike"], row["right"], row["open_interest"]) == ("AAPL", 150.0, "C", 8133.0)
    assert (row["bid"], row["ask"], row["last"], row["volume"]) == (28.9, 29.25, 29.25, 8.0)
    assert row["iv"] == pytest.approx(0.3570277203465058) and row["gamma"] == pytest.approx(0.0061735291012820675)
    assert snap.quote_time.strftime("%Y-%m-%d %H:%M:%S %Z") == "2022-04-29 13:44:23 EDT"


@pytest.mark.shared_data
def test_polygon_recorded_contract_pages_follow_next_url_on_our_host(srv, keys):
    p1 = shared_file(POLYGON / "polygon_2022-05_A_options_contracts_page1_next_url.json").read_bytes()
    p2 = shared_file(POLYGON / "polygon_2022-05_A_options_contracts_page2_cursor.json").read_bytes()
    assert b"https://api.polygon.io/v3/reference/options/contracts?cursor=" in p1  # another host
    srv.route("/v3/reference/options/contracts", lambda seen: Reply(body=p2 if "cursor" in seen.query else p1))
    table = PolygonProvider(base_url=srv.url).list_contracts("A")
    n1, n2 = (len(json.loads(p)["results"]) for p in (p1, p2))
    assert len(table) == n1 + n2 and table["ticker"].is_unique
    assert set(table["root"]) == {"A"} and set(table["right"]) == {"C"}
    assert table["strike"].min() == 65 and table["strike"].max() == 160
    hits = srv.hits("/v3/reference/options/contracts")
    assert len(hits) == 2 and hits[1].query["cursor"] == "YXA9JTdCJTIySUQlMjIlM0ElMjIy"
    assert all(h.query["apiKey"] == SECRET for h in hits)


@pytest.mark.shared_data
def test_polygon_recorded_aggregates_and_index_snapshot(srv, keys):
    srv.route("/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04", Reply(body=shared_file(
        POLYGON / "polygon_clientmock_v2_aggs_AAPL_1day_2005-04-01_2005-04-04.json").read_bytes()))
    srv.route("/v3/snapshot/indices", Reply(body=shared_file(
        POLYGON / "polygon_clientmock_v3_snapshot_indices_SPX_partial_errors.json").read_bytes()))
    provider = PolygonProvider(base_url=srv.url)
    bars = provider.daily_aggregates("AAPL", "2005-04-01", "2005-04-04")
    assert list(bars["date"]) == [pd.Timestamp("2005-04-01"), pd.Timestamp("2005-04-04")]
    assert list(bars["close"]) == [1.4604, 1.4675] and bars["volume"].iloc[0] == 642646396.0
    assert provider.index_value("SPX") == 3822.39
    err, _ = fails(ProviderResponseError, provider.index_value, "APx")  # a per-ticker error inside a 200
    assert "NOT_FOUND" in str(err)


def test_polygon_bad_key_and_status_error(srv, keys):
    srv.route("/v3/snapshot/options/SPY", Reply(401, {"status": "ERROR", "request_id": "x",
                                                      "error": "Unknown API Key"}))
    provider = PolygonProvider(base_url=srv.url, sleep=FakeSleep())
    err, _ = fails(ProviderAuthError, provider.fetch_chain, "SPY")
    assert "polygon /v3/snapshot/options/SPY: HTTP 401: credentials refused: Unknown API Key" == str(err)
    assert len(srv.hits("/v3/snapshot/options/SPY")) == 1
    srv.route("/v3/snapshot/options/QQQ", Reply(body={"status": "ERROR", "error": "Internal lookup failed"}))
    err, _ = fails(ProviderError, provider.fetch_chain, "QQQ")
    assert "status ERROR: Internal lookup failed" in str(err)
    srv.route("/v3/snapshot/options/IWM", Reply(body={"status": "OK", "results": []}))
    err, _ = fails(ProviderResponseError, provider.fetch_chain, "IWM")
    assert "empty chain" in str(err)


def test_polygon_pagination_is_bounded(srv, keys):
    counter = iter(range(10_000))
    srv.route("/v3/snapshot/options/SPY", lambda seen: Reply(body={
        "status": "OK", "results": [], "next_url": f"{srv.url}/v3/snapshot/options/SPY?cursor=c{next(counter)}"}))
    provider = PolygonProvider(base_url=srv.url, max_pages=3)
    err, _ = fails(ProviderError, provider.fetch_chain, "SPY")
    assert "pagination did not end after 3 pages" in str(err)
    assert len(srv.hits("/v3/snapshot/options/SPY")) == 3
    srv.route("/v3/snapshot/options/QQQ", Reply(body={
        "status": "OK", "results": [], "next_url": f"{srv.url}/v3/snapshot/options/QQQ?cursor=same&apiKey=leak"}))
    err, _ = fails(ProviderResponseError, provider.fetch_chain, "QQQ")
    assert "pagination loops" in str(err)
    hits = srv.hits("/v3/snapshot/options/QQQ")
    assert len(hits) == 2 and all(h.query["apiKey"] == SECRET for h in hits)  # a key in next_url is replaced


def test_polygon_pagination_is_bounded_in_time(srv, keys):
    srv.route("/v3/snapshot/options/SPY", lambda seen: Reply(body={
        "status": "OK", "results": [], "next_url": f"{srv.url}/v3/snapshot/options/SPY?cursor=x{len(srv.requests)}"},
        delay=0.3))
    provider = PolygonProvider(base_url=srv.url, chain_budget=0.5, timeout=2.0)
    err, _ = fails(ProviderTimeoutError, provider.fetch_chain, "SPY")
    assert err.endpoint == "/v3/snapshot/options/SPY"
    assert len(srv.hits("/v3/snapshot/options/SPY")) <= 2


@pytest.mark.shared_data
def test_polygon_429_then_success(srv, keys):
    recorded = shared_file(POLYGON / "polygon_clientmock_v3_snapshot_options_AAPL.json").read_bytes()
    srv.route("/v3/snapshot/options/AAPL", Reply(429, {"status": "ERROR", "error": "You've exceeded the maximum "
                                                       "requests per minute"}, headers={"Retry-After": "12"}),
              Reply(body=recorded))
    sleep = FakeSleep()
    snap = PolygonProvider(base_url=srv.url, sleep=sleep).fetch_chain("AAPL")
    assert len(snap.contracts) == 1 and sleep.calls == [12.0]


# ------------------------------------------------------------------------------------------------
# TradingVolatility (hand-made: the response shape is unverified)

TV_SPY = {"collection_date": "2025-11-14 20:46:17", "price": "672.4", "gex_flip_price": "677.55",
          "skew_adjusted_gex": "-1017367026.884", "gex_per_1pct_chg": "-1017367026.884",
          "put_call_ratio_open_interest": "1.82", "implied_volatility": "0.16065465569615178"}


def test_tradingvol_levels(srv, keys, caplog):
    srv.route("/api/gex/latest", Reply(body={"SPY": TV_SPY}))
    provider = TradingVolatilityProvider(base_url=srv.url)
    lv = provider.fetch_levels("spy")
    assert (lv.ticker, lv.source, lv.spot, lv.gamma_flip) == ("SPY", "tradingvol:SPY", 672.4, 677.55)
    assert lv.net_gex == pytest.approx(-1017367026.884)
    assert math.isnan(lv.call_wall) and math.isnan(lv.put_wall)
    assert lv.as_of == pd.Timestamp("2025-11-14 15:46:17", tz=NY)
    with pytest.raises(TypeError):
        lv.raw["price"] = "1"  # read-only
    hit = srv.hits("/api/gex/latest")[0]
    assert hit.query == {"ticker": "SPY", "username": SECRET, "format": "json"}
    assert any("username=***" in r.getMessage() for r in caplog.records)
    srv.route("/api/gex/latest", Reply(body={"QQQ": {**TV_SPY, "call_wall": "620", "put_wall": 600}}))
    lv = provider.fetch_levels("QQQ")
    assert (lv.call_wall, lv.put_wall) == (620.0, 600.0)
    assert_clean(provider, lv)


@pytest.mark.parametrize("payload, match", [
    ({"SPY": {k: v for k, v in TV_SPY.items() if k != "gex_flip_price"}}, "wrong schema: missing SPY.gex_flip_price"),
    ({"QQQ": TV_SPY}, "wrong schema: missing SPY"),
    ({"SPY": {**TV_SPY, "price": "n/a"}}, "wrong schema: SPY.price is 'n/a', not a number"),
    ({"SPY": "nope"}, "wrong schema: SPY is a str"),
    ({"error": "Invalid username"}, "vendor error: Invalid username"),
    ([TV_SPY], "wrong schema: the top level is a list"),
])
def test_tradingvol_strict_parser(srv, keys, payload, match):
    srv.route("/api/gex/latest", Reply(body=payload))
    err, _ = fails(ProviderResponseError, TradingVolatilityProvider(base_url=srv.url).fetch_levels, "SPY")
    assert match in str(err) and err.endpoint == "/api/gex/latest"


def test_tradingvol_access_denied(srv, keys):
    srv.route("/api/gex/latest", Reply(403, "Access denied", content_type="text/plain"))
    err, _ = fails(ProviderAuthError, TradingVolatilityProvider(base_url=srv.url).fetch_levels, "SPY")
    assert "HTTP 403: credentials refused: Access denied" in str(err)


# ------------------------------------------------------------------------------------------------
# RESEARCH_LIB_OFFLINE: no connection from any path; slow headers through the command line


def run_cli(*argv):
    from research_lib.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    code = main(list(map(str, argv)), out=out, err=err)
    return code, out.getvalue(), err.getvalue(), time.monotonic() - t0


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    """A clean environment for the command line: a store in tmp_path, no provider order, no keys."""
    for var in ("RESEARCH_LIB_OFFLINE", "RESEARCH_LIB_PROVIDERS", "RESEARCH_LIB_CBOE_URL", "RESEARCH_LIB_TRADIER_URL",
                "RESEARCH_LIB_POLYGON_URL", "TRADIER_TOKEN", "POLYGON_API_KEY", BUDGET_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RESEARCH_LIB_DATA", str(tmp_path / "store"))
    return monkeypatch


@pytest.fixture
def offline_providers(cli_env, srv):
    """Every provider pointed at the loopback server (which counts connections), keys set, offline on."""
    cli_env.setenv("RESEARCH_LIB_CBOE_URL", srv.url)
    cli_env.setenv("RESEARCH_LIB_TRADIER_URL", srv.url)
    cli_env.setenv("RESEARCH_LIB_POLYGON_URL", srv.url)
    cli_env.setenv("TRADIER_TOKEN", SECRET)
    cli_env.setenv("POLYGON_API_KEY", SECRET)
    cli_env.setenv("TRADINGVOL_API_KEY", SECRET)
    cli_env.setenv("RESEARCH_LIB_OFFLINE", "1")
    return srv


@pytest.mark.parametrize("factory, call", [
    (lambda: CboeProvider(base_url=os.environ["RESEARCH_LIB_CBOE_URL"]), "fetch_chain"),
    (lambda: TradierProvider(), "fetch_chain"),
    (lambda: TradierProvider(), "quote"),
    (lambda: PolygonProvider(), "fetch_chain"),
    (lambda: PolygonProvider(), "list_contracts"),
    (lambda: TradingVolatilityProvider(base_url=os.environ["RESEARCH_LIB_CBOE_URL"]), "fetch_levels"),
])
def test_offline_every_provider_raises_before_opening_a_socket(offline_providers, factory, call):
    offline_providers.route("/", Reply(body={"never": "served"}))
    provider = factory()
    err, elapsed = fails(ProviderOfflineError, getattr(provider, call), "SPY")
    assert isinstance(err, ProviderConnectionError)
    assert "RESEARCH_LIB_OFFLINE is set: no network request made" in str(err)
    assert offline_providers.connections == 0 and elapsed < 1.0


def test_offline_is_read_at_request_time_and_beats_the_cache(cli_env, srv):
    srv.route("/x", Reply(body={"ok": 1}))
    c = client(srv.url)
    assert c.get_json("/x") == {"ok": 1} and srv.connections == 1
    cli_env.setenv("RESEARCH_LIB_OFFLINE", "yes")
    fails(ProviderOfflineError, c.get_json, "/x")  # even a cached answer: offline means no live data at all
    cli_env.setenv("RESEARCH_LIB_OFFLINE", "0")
    assert c.get_json("/x") == {"ok": 1}


@pytest.mark.parametrize("argv", [
    ("fetch", "SPY", "--provider", "tradier"),
    ("fetch", "SPY", "--provider", "polygon"),
    ("fetch", "SPY", "--provider", "cboe"),
    ("gex", "--source", "tradier", "--symbol", "SPY"),
    ("gex", "--source", "polygon", "--symbol", "SPY"),
    ("decide", "--source", "tradier", "--symbol", "SPY"),
    ("decide", "--source", "polygon", "--symbol", "SPY"),
])
def test_offline_commands_open_no_connection(offline_providers, argv):
    code, out, err, _ = run_cli(*argv)
    assert code == 4 and out == ""  # 4: no source answered
    assert "RESEARCH_LIB_OFFLINE is set" in err, err
    # fetch says in its own words that nothing was fetched; the others name the provider's error
    assert ("nothing was fetched" in err) if argv[0] == "fetch" else ("ProviderOfflineError" in err), err
    assert offline_providers.connections == 0 and offline_providers.requests == []


@pytest.mark.notebook
@pytest.mark.parametrize("source", ["tradier", "polygon"])
def test_offline_report_opens_no_connection(offline_providers, tmp_path, source):
    code, out, err, _ = run_cli("report", "daily", "--symbols", "SPY", "--source", source, "--reports-dir",
                                tmp_path / "reports")
    assert code != 0, out + err
    assert "ProviderOfflineError" in out + err or "RESEARCH_LIB_OFFLINE" in out + err, out + err
    assert offline_providers.connections == 0


SLOW_BUDGET = 2.0


@pytest.fixture
def slow_cboe(cli_env, srv):
    """Cboe pointed at a server trickling one header byte every 0.5 s (about a minute of headers)."""
    for symbol in ("SPY", "_SPX"):
        srv.route(CBOE_PATH.format(symbol), Reply(body=_tiny_cboe(), header_drip=0.5))
    cli_env.setenv("RESEARCH_LIB_CBOE_URL", srv.url)
    cli_env.setenv(BUDGET_ENV, str(SLOW_BUDGET))
    return srv


def test_fetch_from_a_server_trickling_headers_fails_within_the_budget(slow_cboe):
    code, out, err, elapsed = run_cli("fetch", "SPY", "--provider", "cboe")
    assert code != 0 and out == ""
    assert "ProviderTimeoutError" in err and "no complete response headers after 2 s" in err, err
    assert elapsed < SLOW_BUDGET + 1.5, f"took {elapsed:.1f} s"


def test_gex_auto_falls_back_to_the_store_when_cboe_trickles(slow_cboe):
    from research_lib.data.modelled import modelled_chain
    from research_lib.data.store import ChainStore

    ChainStore().put(modelled_chain("SPX"))
    code, out, err, elapsed = run_cli("gex", "--source", "auto", "--json")
    assert code == 0, err
    assert "from store" in err and "STALE" in err and "ProviderTimeoutError" in err, err
    assert json.loads(out)["underlying"] == "SPX"
    assert elapsed < SLOW_BUDGET + 30  # the budget plus computing the levels


def test_gex_auto_falls_back_to_the_modelled_chain_when_cboe_trickles(slow_cboe):
    code, out, err, elapsed = run_cli("gex", "--source", "auto", "--json")
    assert code == 0, err
    assert "MODELLED DATA" in err and "ProviderTimeoutError" in err and "no complete response headers" in err, err
    assert json.loads(out)["modelled"] is True
    assert elapsed < SLOW_BUDGET + 30


@pytest.mark.parametrize(("raw", "expected"), [
    (1.5, 1.5), (2, 2.0), ("3.25", 3.25), (None, math.nan), (True, math.nan), ("n/a", math.nan),
    ({"x": 1}, math.nan), (math.inf, math.nan), ("NaN", math.nan),
])
def test_json_number_is_the_one_provider_number_parser(raw, expected):
    """Polygon and Tradier both read their JSON numbers through ``sources.base.json_number``."""
    got = base.json_number(raw)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
    assert polygon.json_number is base.json_number and tradier.json_number is base.json_number

"""One resilient HTTP client under every live provider, and the errors the providers raise.

:class:`HttpClient` wraps :class:`httpx.Client` and turns one *logical* request (``get_json``) into at most
``max_retries + 1`` HTTP attempts that together never take longer than ``time_budget`` seconds
(default 30, or ``$RESEARCH_LIB_HTTP_BUDGET``). The budget bounds the whole request, from the connect
to the last byte of the body: httpx's own timeouts are per socket operation (a server that sends one
header byte a second never trips them), so every connect, read and write of an attempt is given at
most what is left of the attempt's deadline (:class:`DeadlineBackend`, under httpcore):

================================== =====================================================================
what happened                      what the client does
================================== =====================================================================
2xx with a JSON body               returns the parsed JSON (and caches it ``cache_ttl`` seconds), whatever
                                   the ``Content-Type`` says (valid JSON served as ``text/html`` is JSON)
2xx with an HTML page, a           :class:`ProviderResponseError` ("HTML page instead of JSON",
non-JSON or a truncated body       "truncated JSON", "not JSON"); no retry (the body is deterministic)
redirect (301/302/303/307/308)     followed only to the same origin (scheme, host and port of
                                   ``base_url``), at most 3 times; a redirect to another origin raises
                                   :class:`ProviderRedirectError` without contacting it (no retry): a
                                   key in the query string or a header must never reach another host
401 / 403                          :class:`ProviderAuthError` with the vendor's message; no retry
429                                waits ``Retry-After`` (seconds or an HTTP date) or, for Tradier,
                                   until ``X-Ratelimit-Expiry`` (epoch ms) when ``X-Ratelimit-Available``
                                   is 0 -- only if the wait fits the remaining budget; otherwise raises
                                   :class:`ProviderRateLimitError` at once, without sleeping
other 4xx                          :class:`ProviderError` ("HTTP 404 ..."); no retry
5xx                                retries after an exponential backoff with jitter (or the server's
                                   ``Retry-After``), then :class:`ProviderError` "HTTP 503 after 4 attempts"
connection refused / reset,        retries like a 5xx, then :class:`ProviderConnectionError`
peer closed mid-body
connect or read timeout            retries like a 5xx, then :class:`ProviderTimeoutError`
slow drip (headers or body that    the attempt is abandoned when ``attempt_timeout`` (default: what is left
trickle in past the limit)         of the budget) runs out; retried; :class:`ProviderTimeoutError`
``RESEARCH_LIB_OFFLINE=1``         :class:`ProviderOfflineError` before any socket is opened, from every
                                   provider and every command (the cache is not consulted either)
================================== =====================================================================

A retry is only started when its wait fits in the remaining budget; each attempt's connect, read
and write operations are capped to what is left of it. (Name resolution, ``getaddrinfo``, is the one
step the deadline cannot interrupt: the standard library gives it no timeout.) The waits go through an injectable ``sleep`` and the budget
counts the *scheduled* waits, so tests can assert waits without sleeping.

Secrets (API keys, tokens) never leave the client: they are redacted from exception messages, from
``repr(client)``, from this module's log records (logger ``research_lib.http``: one DEBUG record per
attempt, one WARNING per retry, each with the URL's secret query parameters replaced by ``***``) and
from the records of the ``httpx``/``httpcore`` loggers (a redacting filter is installed on them).
"""

from __future__ import annotations

import collections
import datetime as dt
import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpcore
import httpx
import numpy as np
import pandas as pd

from research_lib import calendar as cal
from research_lib.core.chain import NY, ResearchLibError

logger = logging.getLogger("research_lib.http")

#: Query parameters whose values are credentials (compared case-insensitively); never logged.
SECRET_PARAM_NAMES = frozenset({
    "apikey", "api_key", "access_token", "token", "key", "username", "password", "secret", "client_secret",
})
REDACTED = "***"
#: Largest response body accepted (bytes, after decompression). A full SPX chain is ~30 MB.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
USER_AGENT = "research_lib (python-httpx)"
#: Seconds one logical request may take when neither ``time_budget`` nor ``$RESEARCH_LIB_HTTP_BUDGET`` says.
DEFAULT_TIME_BUDGET = 30.0
#: Environment variable overriding :data:`DEFAULT_TIME_BUDGET` (positive seconds).
BUDGET_ENV = "RESEARCH_LIB_HTTP_BUDGET"
#: Environment variable that forbids every network request when set to 1/true/yes.
OFFLINE_ENV = "RESEARCH_LIB_OFFLINE"
#: Most same-origin redirects followed by one attempt.
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def is_offline() -> bool:
    """True when ``$RESEARCH_LIB_OFFLINE`` is 1, true or yes (any case): no request may be sent."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def default_time_budget() -> float:
    """``$RESEARCH_LIB_HTTP_BUDGET`` as seconds when set, else :data:`DEFAULT_TIME_BUDGET`.

    Raises
    ------
    ValueError
        The variable is set but is not a positive, finite number of seconds.
    """
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_TIME_BUDGET
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{BUDGET_ENV}={raw!r}: must be a positive number of seconds")
    return value


# --------------------------------------------------------------------------------------------------
# redaction


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its URL-encoded forms) replaced by ``***``.

    Parameters
    ----------
    text : str
        Any text: a message, a URL, a log line.
    secrets : iterable of str
        The values to hide. Empty strings and ``None`` are ignored; longer secrets are replaced first.
    """
    out = str(text)
    variants: set[str] = set()
    for s in secrets:
        if not s:
            continue
        s = str(s)
        variants.update({s, quote(s, safe=""), quote_plus(s)})
    for v in sorted(variants, key=len, reverse=True):
        if v:
            out = out.replace(v, REDACTED)
    return out


def strip_secret_params(url: str, names: Iterable[str] = SECRET_PARAM_NAMES) -> str:
    """``url`` with the values of credential query parameters (``apiKey=...``) replaced by ``***``."""
    lowered = {n.lower() for n in names}
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return REDACTED
    if not parts.query:
        return str(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, REDACTED if k.lower() in lowered else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


_PARAM_RE = re.compile(r"(?i)(?<![A-Za-z0-9_])(" + "|".join(sorted(SECRET_PARAM_NAMES)) + r")=([^&\s\"'<>]+)")


class _SecretFilter(logging.Filter):
    """Redacts every registered secret from log records (installed on httpx, httpcore and ours)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = tuple(self._secrets)
        return redact(text, secrets) if secrets else text

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string: hide the args entirely
            message = str(record.msg)
        clean = redact(_PARAM_RE.sub(r"\1=" + REDACTED, message), secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, secrets)
            record.exc_info = None
        return True


_FILTER = _SecretFilter()
for _name in ("research_lib.http", "httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
              "httpcore.proxy", "httpcore.socks"):
    logging.getLogger(_name).addFilter(_FILTER)


def register_secrets(*secrets: str) -> None:
    """Add values to the process-wide redaction list (log filters and every :class:`ProviderError`)."""
    _FILTER.register(secrets)


# --------------------------------------------------------------------------------------------------
# errors


class ProviderError(ResearchLibError):
    """A live data provider could not give a usable answer.

    Attributes
    ----------
    provider : str
        ``"cboe"``, ``"tradier"``, ``"polygon"``, ``"tradingvol"``.
    endpoint : str
        The URL path asked (never a query string, which may hold a key).
    status : int or None
        The last HTTP status received, ``None`` when no response came.
    what : str
        What was wrong ("truncated JSON", "HTTP 503 after 4 attempts" ...).
    """

    def __init__(self, provider: str, endpoint: str, what: str, *, status: int | None = None):
        endpoint = str(endpoint).split("?", 1)[0]
        what = _FILTER.redact(str(what))
        self.provider = provider
        self.endpoint = endpoint
        self.status = status
        self.what = what
        super().__init__(f"{provider} {endpoint}: {what}")


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 401/403), or none were configured."""


class MissingCredentialsError(ProviderAuthError):
    """The environment variable holding a provider's key is not set (raised before any request)."""

    def __init__(self, provider: str, env_var: str, hint: str = ""):
        self.env_var = env_var
        super().__init__(provider, "(no request made)",
                         f"no API key: set the environment variable {env_var}{f' ({hint})' if hint else ''}")


class ProviderRateLimitError(ProviderError):
    """HTTP 429 and the wait the provider asks for does not fit the time budget (or retries ran out)."""


class ProviderTimeoutError(ProviderError):
    """Connect or read timeout, or a response that did not complete in time (slow drip)."""


class ProviderConnectionError(ProviderError):
    """No connection (refused, reset, DNS) or the peer closed it mid-response."""


class ProviderOfflineError(ProviderConnectionError):
    """``RESEARCH_LIB_OFFLINE`` is set: the request was refused before any connection was opened."""


class ProviderResponseError(ProviderError):
    """A response came but is unusable: HTML page, non-JSON or truncated body, wrong schema, empty chain."""


class ProviderRedirectError(ProviderResponseError):
    """The server redirected to another origin (scheme, host or port), or redirected too often.

    Attributes
    ----------
    location : str
        Where the redirect pointed (credential parameters replaced by ``***``).
    """

    def __init__(self, provider: str, endpoint: str, what: str, *, status: int | None = None,
                 location: str = ""):
        self.location = _FILTER.redact(location)
        super().__init__(provider, endpoint, what, status=status)


# --------------------------------------------------------------------------------------------------
# the client


def _n_attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


class _SlowBody(Exception):
    def __init__(self, received: int, limit: float):
        self.received = received
        self.limit = limit


class _SlowHeaders(Exception):
    def __init__(self, limit: float):
        self.limit = limit


class _TooLarge(Exception):
    pass


class _Redirect(Exception):
    def __init__(self, what: str, status: int, location: str):
        self.what = what
        self.status = status
        self.location = location


# --------------------------------------------------------------------------------------------------
# the whole-request deadline, enforced under httpcore

_DEADLINE = threading.local()


def _bounded(timeout: float | None, exc_cls: type[Exception]) -> float | None:
    """``timeout`` shrunk to what is left of this thread's attempt deadline (``exc_cls`` once it passed)."""
    deadline = getattr(_DEADLINE, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        _DEADLINE.fired = True
        raise exc_cls("the attempt's deadline passed")
    # Whether this operation's timeout is the deadline's: if it times out, the deadline is what ran out.
    _DEADLINE.capped = timeout is None or left < timeout
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read, write and TLS handshake ends by the current attempt's deadline.

    The deadline is read per operation from a thread-local set by :class:`HttpClient` around each
    attempt, so a pooled keep-alive connection obeys the deadline of whichever attempt uses it. With no
    deadline set the stream behaves exactly like the one it wraps.
    """

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                     _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore network backend whose connects and streams obey the current attempt's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_tcp(host, port, _bounded(timeout, httpcore.ConnectTimeout),
                                                        local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout),
                                                                socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _install_deadline(client: httpx.Client) -> int:
    """Put :class:`DeadlineBackend` under every network transport of ``client`` (proxy mounts included).

    httpx offers no public way to choose httpcore's network backend, so this sets the pool's backend;
    it fails loudly (RuntimeError) rather than silently leave requests unbounded if httpx/httpcore
    change that layout. Returns the number of transports changed (0 for a mock transport).
    """
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    changed = 0
    for transport in transports:
        if not isinstance(transport, httpx.HTTPTransport):
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            raise RuntimeError("cannot bound the request time: httpx.HTTPTransport._pool._network_backend "
                               "not found (httpx/httpcore changed); pin httpx 0.28 / httpcore 1.x")
        if not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)
        changed += 1
    return changed


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    return scheme, (url.host or "").lower(), url.port or {"http": 80, "https": 443}.get(scheme)


def _as_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def json_truncated(text: str, exc: json.JSONDecodeError) -> bool:
    """Whether a JSON decoding error means the text stops early (rather than being malformed)."""
    return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")


def _html_title(body: bytes) -> str:
    m = re.search(rb"<title[^>]*>(.*?)</title>", body[:4096], re.IGNORECASE | re.DOTALL)
    if not m:
        return ""
    title = " ".join(m.group(1).decode("utf-8", errors="replace").split())
    return f" titled {title[:80]!r}"


def _looks_html(body: bytes, content_type: str) -> bool:
    return "html" in content_type.lower() or body.lstrip()[:1] == b"<"


class HttpClient:
    """A JSON-over-HTTPS client with bounded retries, a time budget, rate-limit handling and a TTL cache.

    Parameters
    ----------
    provider : str
        Name used in errors and logs (``"cboe"``).
    base_url : str
        Scheme and host (``"https://cdn.cboe.com"``); every request goes to this origin only (a
        redirect elsewhere raises :class:`ProviderRedirectError`).
    timeout : float
        Connect and per-read timeout in seconds (default 10). Capped, per attempt, to what is left of
        the budget.
    max_retries : int
        Extra attempts after the first (default 3: at most 4 requests per logical call).
    backoff : float
        Base of the exponential backoff in seconds (default 0.5): the wait before retry *n* (1-based) is
        drawn uniformly from ``[b·2^(n-1)/2, b·2^(n-1)]``.
    time_budget : float, optional
        Wall-clock seconds one :meth:`get_json` call may take, from the first connect to the last body
        byte, attempts and waits included. ``None`` (default): ``$RESEARCH_LIB_HTTP_BUDGET`` when set,
        else :data:`DEFAULT_TIME_BUDGET` (30).
    cache_ttl : float
        Seconds a successful response is served from memory for the same method + URL + parameters
        (default 60; 0 disables the cache).
    secrets : iterable of str
        Values to redact everywhere (API keys, tokens). They may appear in ``headers``/parameters.
    headers : mapping, optional
        Default headers (``Authorization`` ...). ``Accept: application/json`` is always sent.
    attempt_timeout : float, optional
        Most seconds one attempt (connect, headers, same-origin redirects and the whole body) may take;
        ``None`` (default) = what is left of the budget. Headers or a body that trickle in slower are
        abandoned (``ProviderTimeoutError``).
    max_bytes : int
        Largest body accepted (default 256 MiB).
    secret_params : iterable of str
        Query-parameter names whose values are hidden in logs (case-insensitive).
    transport : httpx.BaseTransport, optional
        For tests (``httpx.MockTransport``); the default is a real network transport.
    clock : callable() -> float
        Monotonic seconds for the cache's TTL (default :func:`time.monotonic`; inject a fake in tests).
    sleep : callable(seconds)
        How to wait between attempts (default :func:`time.sleep`).
    rng : callable() -> float
        Uniform [0, 1) numbers for the jitter (default :func:`random.random`).
    cache_size : int
        Most responses kept in the cache (default 32; the oldest goes first).

    Attributes
    ----------
    requests_sent : int
        HTTP requests actually sent by this client (cache hits send none).
    """

    def __init__(self, provider: str, base_url: str, *, timeout: float = 10.0, max_retries: int = 3,
                 backoff: float = 0.5, time_budget: float | None = None, cache_ttl: float = 60.0,
                 secrets: Iterable[str] = (), headers: Mapping[str, str] | None = None,
                 attempt_timeout: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 secret_params: Iterable[str] = SECRET_PARAM_NAMES,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random, cache_size: int = 32):
        if time_budget is None:
            time_budget = default_time_budget()
        for name, value in (("timeout", timeout), ("time_budget", time_budget)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if attempt_timeout is not None and not (math.isfinite(attempt_timeout) and attempt_timeout > 0):
            raise ValueError(f"attempt_timeout must be positive seconds or None, got {attempt_timeout!r}")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or not 0 <= max_retries <= 20:
            raise ValueError(f"max_retries must be an integer in 0..20, got {max_retries!r}")
        if not (math.isfinite(backoff) and backoff >= 0):
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
        if not (math.isfinite(cache_ttl) and cache_ttl >= 0):
            raise ValueError(f"cache_ttl must be >= 0 seconds, got {cache_ttl!r}")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be http(s)://host[:port], got {redact(base_url, secrets)!r}")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.time_budget = float(time_budget)
        self.cache_ttl = float(cache_ttl)
        self.attempt_timeout = attempt_timeout
        self.max_bytes = int(max_bytes)
        self.requests_sent = 0
        self._secrets = tuple(s for s in secrets if s)
        self._secret_params = frozenset(n.lower() for n in secret_params)
        register_secrets(*self._secrets)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._cache: collections.OrderedDict[tuple, tuple[float, str]] = collections.OrderedDict()
        self._cache_size = cache_size
        default_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        default_headers.update(headers or {})
        # Redirects are followed by _send, same origin only; the deadline backend bounds every attempt.
        self._client = httpx.Client(base_url=self.base_url, headers=default_headers, transport=transport,
                                    follow_redirects=False, trust_env=transport is None)
        self._origin = _origin(self._client.base_url)
        if transport is None:
            _install_deadline(self._client)

    # -- housekeeping --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"HttpClient(provider={self.provider!r}, base_url={self._redact(self.base_url)!r}, "
                f"timeout={self.timeout:g}, max_retries={self.max_retries}, backoff={self.backoff:g}, "
                f"time_budget={self.time_budget:g}, cache_ttl={self.cache_ttl:g}, "
                f"secrets={len(self._secrets)} redacted)")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_secrets(self, *secrets: str) -> None:
        """Redact more values (a provider handing its key to a client it was given)."""
        new = tuple(s for s in secrets if s)
        self._secrets = self._secrets + new
        register_secrets(*new)

    def clear_cache(self) -> None:
        """Forget every cached response."""
        self._cache.clear()

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def safe_url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The full URL of a request with credential parameters and secrets replaced by ``***``."""
        url = str(httpx.URL(self.base_url + path, params=params or None))
        return self._redact(strip_secret_params(url, self._secret_params))

    # -- the request -----------------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None, *, use_cache: bool = True,
                 time_budget: float | None = None) -> object:
        """GET ``base_url + path`` and return the parsed JSON body.

        Parameters
        ----------
        path : str
            URL path starting with ``/`` (no scheme or host: requests never leave ``base_url``'s host).
        params : mapping, optional
            Query parameters; ``None`` values are dropped, booleans sent as ``true``/``false``.
        headers : mapping, optional
            Extra headers for this request.
        use_cache : bool
            Serve from / store into the TTL cache (default True).
        time_budget : float, optional
            A tighter budget for this call (seconds): loops over many requests pass what is left of
            their own budget. Never more than the client's ``time_budget``.

        Raises
        ------
        ProviderOfflineError
            ``$RESEARCH_LIB_OFFLINE`` is set: nothing is sent, no socket is opened.
        ProviderError
            Or one of its subclasses; see the module docstring for which failure raises what.
        """
        if not path.startswith("/") or "://" in path:
            raise ValueError(f"path must start with '/', got {self._redact(path)!r}")
        endpoint = urlsplit(path).path
        if is_offline():
            raise self._error(ProviderOfflineError, endpoint,
                              f"{OFFLINE_ENV} is set: no network request made (unset it to fetch live data)")
        q = {str(k): _as_param(v) for k, v in (params or {}).items() if v is not None}
        key = ("GET", self.base_url + path, tuple(sorted(q.items())),
               tuple(sorted((headers or {}).items())))
        if use_cache and self.cache_ttl > 0:
            hit = self._cache.get(key)
            if hit is not None and self._clock() - hit[0] < self.cache_ttl:
                logger.debug("%s GET %s served from cache (%.1f s old)", self.provider,
                             self.safe_url(path, q), self._clock() - hit[0])
                return json.loads(hit[1])
        budget = self.time_budget if time_budget is None else min(self.time_budget, time_budget)
        if budget <= 0:
            raise self._error(ProviderTimeoutError, endpoint, "no time left in the caller's budget: not sent")
        text, value = self._fetch(path, endpoint, q, dict(headers or {}), budget)
        if use_cache and self.cache_ttl > 0:
            self._cache[key] = (self._clock(), text)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return value

    def _error(self, cls: type[ProviderError], endpoint: str, what: str, status: int | None = None):
        return cls(self.provider, endpoint, self._redact(what), status=status)

    def _fetch(self, path: str, endpoint: str, params: dict[str, str], headers: dict[str, str],
               budget: float) -> tuple[str, object]:
        attempts = self.max_retries + 1
        start = time.monotonic()
        real_slept = 0.0
        scheduled = 0.0

        def spent() -> float:
            return (time.monotonic() - start) - real_slept + scheduled

        safe = self.safe_url(path, params)
        # The last failure: (error class, what, detail, status); messages get "after N attempts".
        last: tuple[type[ProviderError], str, str, int | None] | None = None
        done = 0
        for attempt in range(1, attempts + 1):
            remaining = budget - spent()
            if remaining <= 0:
                break
            logger.debug("%s GET %s (attempt %d/%d, %.1f s of the %g s budget left)", self.provider, safe,
                         attempt, attempts, remaining, budget)
            done = attempt
            wait: float | None = None
            try:
                status, resp_headers, body = self._send(path, params, headers, remaining)
            except (_SlowBody, _SlowHeaders, _TooLarge, _Redirect, httpx.RequestError) as exc:
                retryable = self._transport_error(exc)
                if retryable is None:
                    raise self._fatal_transport_error(exc, endpoint) from None
                last = (*retryable, "", None)
            else:
                content_type = resp_headers.get("content-type", "")
                if 200 <= status < 300:
                    return self._check_body(body, content_type, endpoint, status)
                detail = self._vendor_message(body, content_type)
                if status in (401, 403):
                    raise self._error(ProviderAuthError, endpoint,
                                      f"HTTP {status}: credentials refused{detail}", status)
                if status == 429:
                    wait, why = self._rate_limit_wait(resp_headers)
                    left = budget - spent()
                    if wait is not None and wait > left:
                        raise self._error(ProviderRateLimitError, endpoint,
                                          f"rate limited: {why} {wait:.0f} s exceeds the {budget:.3g} s "
                                          f"budget ({max(left, 0):.1f} s left){detail}", status)
                    last = (ProviderRateLimitError, "rate limited: HTTP 429", detail, status)
                elif status >= 500:
                    wait, _ = self._rate_limit_wait(resp_headers)
                    last = (ProviderError, f"HTTP {status}", detail, status)
                else:
                    hint = " (unknown symbol or endpoint?)" if status == 404 else ""
                    raise self._error(ProviderError, endpoint, f"HTTP {status}{hint}{detail}", status)
            if attempt == attempts:
                break
            if wait is None:
                wait = self._backoff_delay(attempt)
            left = budget - spent()
            cls, what, detail, status = last
            if wait >= left:
                raise self._error(cls, endpoint,
                                  f"{what} after {_n_attempts(attempt)}{detail}; the next retry (in {wait:.2f} s) "
                                  f"would not fit the {budget:.3g} s budget ({max(left, 0):.2f} s left)",
                                  status)
            logger.warning("%s GET %s: %s%s; retrying in %.2f s (attempt %d/%d)", self.provider, safe, what,
                           detail, wait, attempt + 1, attempts)
            t0 = time.monotonic()
            self._sleep(wait)
            real_slept += time.monotonic() - t0
            scheduled += wait
        if last is None:
            raise self._error(ProviderTimeoutError, endpoint,
                              f"the {budget:.3g} s budget ran out before a response")
        cls, what, detail, status = last
        budget_note = "" if done == attempts else f" (the {budget:.3g} s budget ran out)"
        raise self._error(cls, endpoint, f"{what} after {_n_attempts(done)}{detail}{budget_note}", status)

    def _send(self, path: str, params: dict[str, str], headers: dict[str, str],
              remaining: float) -> tuple[int, httpx.Headers, bytes]:
        """One attempt: the request, its same-origin redirects and the whole body, by one deadline."""
        per_op = max(min(self.timeout, remaining), 0.001)
        limit = min(self.attempt_timeout or remaining, remaining)
        deadline = time.monotonic() + limit
        request = self._client.build_request("GET", path, params=params or None, headers=headers or None,
                                             timeout=httpx.Timeout(per_op))
        saved = (getattr(_DEADLINE, "at", None), getattr(_DEADLINE, "fired", False),
                 getattr(_DEADLINE, "capped", False))
        _DEADLINE.at, _DEADLINE.fired, _DEADLINE.capped = deadline, False, False
        received: int | None = None  # None until the headers of the final response arrived
        try:
            for hop in range(MAX_REDIRECTS + 1):
                self.requests_sent += 1
                resp = self._client.send(request, stream=True)
                try:
                    if resp.status_code in REDIRECT_STATUSES and resp.next_request is not None:
                        request = self._check_redirect(resp, hop)
                        continue
                    chunks: list[bytes] = []
                    received = 0
                    for chunk in resp.iter_bytes():
                        received += len(chunk)
                        if received > self.max_bytes:
                            raise _TooLarge()
                        chunks.append(chunk)
                        if time.monotonic() > deadline:  # a transport without the deadline backend (mocks)
                            raise _SlowBody(received, limit)
                    logger.debug("%s %s: HTTP %d, %d bytes", self.provider, resp.url.path, resp.status_code,
                                 received)
                    return resp.status_code, resp.headers, b"".join(chunks)
                finally:
                    resp.close()
            raise AssertionError("unreachable: _check_redirect raises after MAX_REDIRECTS hops")
        except httpx.TimeoutException:
            if not (_DEADLINE.fired or _DEADLINE.capped):  # an ordinary connect/read timeout
                raise
            if received is None:
                raise _SlowHeaders(limit) from None
            raise _SlowBody(received, limit) from None
        finally:
            _DEADLINE.at, _DEADLINE.fired, _DEADLINE.capped = saved

    def _check_redirect(self, resp: httpx.Response, hop: int) -> httpx.Request:
        """The next request of a same-origin redirect; :class:`_Redirect` for another origin or one hop too many."""
        target = resp.next_request
        location = self._redact(strip_secret_params(str(target.url), self._secret_params))
        if _origin(target.url) != self._origin:
            scheme, host, port = self._origin
            raise _Redirect(f"HTTP {resp.status_code} redirect to another origin ({location}); requests stay on "
                            f"{scheme}://{host}:{port}, so it was not followed", resp.status_code, location)
        if hop >= MAX_REDIRECTS:
            raise _Redirect(f"more than {MAX_REDIRECTS} redirects (the last to {location})", resp.status_code,
                            location)
        logger.debug("%s: HTTP %d redirect to %s (same origin, followed)", self.provider, resp.status_code,
                     location)
        return target

    @staticmethod
    def _transport_error(exc: Exception) -> tuple[type[ProviderError], str] | None:
        """(error class, what) for a retryable failed attempt, or None when it must not be retried."""
        if isinstance(exc, _SlowBody):
            return ProviderTimeoutError, (f"slow response: body still incomplete after {exc.limit:.2g} s "
                                          f"({exc.received} bytes received)")
        if isinstance(exc, _SlowHeaders):
            return ProviderTimeoutError, (f"slow response: no complete response headers after {exc.limit:.2g} s "
                                          f"(the budget bounds the whole request, connect to last byte)")
        if isinstance(exc, httpx.ConnectTimeout):
            return ProviderTimeoutError, "connect timeout"
        if isinstance(exc, httpx.ReadTimeout):
            return ProviderTimeoutError, "read timeout: the server sent nothing in time"
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError, f"timeout ({type(exc).__name__})"
        if isinstance(exc, httpx.ConnectError):
            text = str(exc)
            return ProviderConnectionError, ("connection refused" if "refused" in text.lower()
                                             else f"cannot connect ({text})")
        if isinstance(exc, httpx.RemoteProtocolError):
            return ProviderConnectionError, f"the server closed the connection mid-response ({exc})"
        if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.NetworkError):
            return ProviderConnectionError, f"connection error ({type(exc).__name__}: {exc})"
        return None

    def _fatal_transport_error(self, exc: Exception, endpoint: str) -> ProviderError:
        if isinstance(exc, _TooLarge):
            return self._error(ProviderResponseError, endpoint, f"body larger than {self.max_bytes} bytes")
        if isinstance(exc, _Redirect):
            return ProviderRedirectError(self.provider, endpoint, self._redact(exc.what), status=exc.status,
                                         location=exc.location)
        if isinstance(exc, httpx.DecodingError):
            return self._error(ProviderResponseError, endpoint, f"undecodable body ({exc})")
        return self._error(ProviderError, endpoint, f"request failed ({type(exc).__name__}: {exc})")

    def _check_body(self, body: bytes, content_type: str, endpoint: str, status: int) -> tuple[str, object]:
        """The text and parsed value of a 2xx body that is JSON, whatever its ``Content-Type``.

        A body that does not parse is named: an HTML page (by content type or a leading ``<``), a
        truncated JSON text, not UTF-8, or not JSON.
        """
        if not body.strip():
            raise self._error(ProviderResponseError, endpoint, f"empty body (HTTP {status})", status)

        def html_page() -> ProviderError:
            return self._error(ProviderResponseError, endpoint,
                               f"HTML page instead of JSON{_html_title(body)} (HTTP {status}, {len(body)} bytes)",
                               status)

        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if _looks_html(body, content_type):
                raise html_page() from None
            raise self._error(ProviderResponseError, endpoint, f"body is not UTF-8 text ({exc.reason})",
                              status) from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if _looks_html(body, content_type):
                raise html_page() from None
            if json_truncated(text, exc):
                what = f"truncated JSON: the body ends after {len(body)} bytes ({exc.msg})"
            else:
                snippet = text[max(0, exc.pos - 20): exc.pos + 20].replace("\n", " ")
                what = f"not JSON ({exc.msg} at byte {exc.pos}: {snippet!r})"
            raise self._error(ProviderResponseError, endpoint, what, status) from None
        if "html" in content_type.lower():
            logger.debug("%s %s: body served as %r parsed as JSON; accepted", self.provider, endpoint, content_type)
        return text, value

    def _vendor_message(self, body: bytes, content_type: str) -> str:
        """A short, redacted description of an error body (``: Unknown API Key``)."""
        if not body.strip():
            return ""
        try:
            obj = json.loads(body.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            if _looks_html(body, content_type):
                return f" (HTML error page{_html_title(body)})"
            text = " ".join(body[:200].decode("utf-8", errors="replace").split())
            return f": {self._redact(text)[:120]}" if text else ""
        if isinstance(obj, dict):
            for k in ("error", "message", "fault", "errors", "detail"):
                if obj.get(k):
                    v = obj[k]
                    if isinstance(v, dict):
                        v = v.get("faultstring") or v.get("message") or json.dumps(v)[:120]
                    return f": {self._redact(str(v))[:160]}"
        return ""

    def _backoff_delay(self, attempt: int) -> float:
        d = self.backoff * 2 ** (attempt - 1)
        return d * (0.5 + 0.5 * self._rng())

    @staticmethod
    def _server_now(headers: httpx.Headers) -> float:
        """The server's clock (its ``Date`` header) as epoch seconds, else the local clock."""
        date = headers.get("date")
        if date:
            try:
                return email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError):
                pass
        return time.time()

    def _rate_limit_wait(self, headers: httpx.Headers) -> tuple[float | None, str]:
        """Seconds the server asks to wait and why, from Retry-After or Tradier's X-Ratelimit-*."""
        retry_after = headers.get("retry-after")
        if retry_after:
            ra = retry_after.strip()
            try:
                seconds = float(ra)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(ra).timestamp()
                except (TypeError, ValueError, IndexError):
                    when = None
                seconds = None if when is None else when - self._server_now(headers)
            if seconds is not None and math.isfinite(seconds):
                return max(seconds, 0.0), "Retry-After"
        expiry = headers.get("x-ratelimit-expiry")
        available = headers.get("x-ratelimit-available")
        if expiry:
            try:
                exhausted = available is None or int(float(available)) <= 0
                expiry_s = float(expiry) / 1000.0
            except ValueError:
                return None, ""
            if exhausted and math.isfinite(expiry_s):
                return max(expiry_s - self._server_now(headers), 0.0), "X-Ratelimit-Expiry in"
        return None, ""


# --------------------------------------------------------------------------------------------------
# helpers shared by the providers


def require_env(provider: str, env_var: str, hint: str = "") -> str:
    """The value of ``env_var``, or :class:`MissingCredentialsError` naming it (no request is made)."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise MissingCredentialsError(provider, env_var, hint)
    register_secrets(value)
    return value


def base_url_from_env(env_var: str, default: str) -> str:
    """``$env_var`` when set and not blank (a mirror, proxy or test server of the provider), else ``default``."""
    return os.environ.get(env_var, "").strip() or default


def make_client(provider: str, base_url: str, client: HttpClient | None, *, secrets: Iterable[str] = (),
                headers: Mapping[str, str] | None = None, **client_options: Any) -> HttpClient:
    """The provider's client: ``client`` when given (its secrets extended), else a new :class:`HttpClient`."""
    secrets = tuple(secrets)
    if client is not None:
        if client_options:
            raise ValueError("give either client or client options, not both")
        client.add_secrets(*secrets)
        return client
    return HttpClient(provider, base_url, secrets=secrets, headers=headers, **client_options)


def epoch_to_ny(values: Iterable[Any], unit: str) -> pd.Timestamp | None:
    """The latest positive epoch value (``unit`` ``"ms"``/``"ns"``) as a New York timestamp, or None."""
    nums = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    nums = nums[(nums > 0) & np.isfinite(nums)]
    if nums.empty:
        return None
    try:
        return pd.Timestamp(int(nums.max()), unit=unit, tz="UTC").tz_convert(NY)
    except (ValueError, OverflowError):  # out of pandas' range: no usable time
        return None


def drop_settled(contracts: pd.DataFrame, quote_time: pd.Timestamp) -> tuple[pd.DataFrame, str | None]:
    """Contracts still alive at ``quote_time`` (settlement after it), and a note on those dropped.

    PM contracts settle at the expiry day's close (16:00 ET, 13:00 on early closes), AM contracts at
    its open (09:30 ET), per :func:`research_lib.calendar.settlement_times`. The note (None when
    nothing was dropped) says how many contracts of which expiries went.
    """
    if contracts.empty:
        return contracts, None
    settle = cal.settlement_times(contracts["expiration"].to_numpy(), contracts["settlement"].to_numpy())
    alive = np.asarray(settle > quote_time)
    if alive.all():
        return contracts.reset_index(drop=True), None
    gone = sorted({f"{d:%Y-%m-%d}" for d in contracts.loc[~alive, "expiration"]})
    note = (f"dropped {int((~alive).sum())} of {len(contracts)} contracts already settled at the quote "
            f"time {quote_time:%Y-%m-%d %H:%M %Z} (expir{'ies' if len(gone) > 1 else 'y'} "
            f"{', '.join(gone[:5])}{' ...' if len(gone) > 5 else ''})")
    return contracts[alive].reset_index(drop=True), note


__all__ = [
    "HttpClient",
    "MissingCredentialsError",
    "ProviderAuthError",
    "BUDGET_ENV",
    "DEFAULT_TIME_BUDGET",
    "DeadlineBackend",
    "DeadlineStream",
    "OFFLINE_ENV",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderOfflineError",
    "ProviderRateLimitError",
    "ProviderRedirectError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "REDACTED",
    "SECRET_PARAM_NAMES",
    "base_url_from_env",
    "default_time_budget",
    "drop_settled",
    "epoch_to_ny",
    "is_offline",
    "json_truncated",
    "make_client",
    "redact",
    "register_secrets",
    "require_env",
    "strip_secret_params",
]


class ClientOwner:
    """Mixin for providers that own an :class:`HttpClient` in ``self.client``: ``close()`` and use as a
    context manager (``with CboeProvider() as p: ...``)."""

    client: HttpClient

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

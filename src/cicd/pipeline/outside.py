"""What users reach from outside: public URLs answered, certificates not expiring.

``invoke health --url`` runs these from a GitHub-hosted runner, where nothing is kept
between runs; the hourly monitor on the VM (:mod:`cicd.pipeline.monitor`) reads the
same certificates and visits the same way, and keeps the state and reminders.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cicd.core.config_schema import DEFAULTS
from cicd.core.redact import redact
from cicd.core.settings import MonitorSettings

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier

_BUILT_IN: dict[str, Any] = {
    k: tuple(v) if isinstance(v, list) else v for k, v in DEFAULTS["monitor"].items()
}
#: The built-in thresholds (``[tool.cicd.monitor]``): 3 failures, 2 passes, 6 h...
DEFAULT_RULES = MonitorSettings(**_BUILT_IN)
#: Per-request timeout of the monitor's own requests (public URLs, certificates).
TIMEOUT = 10.0


@dataclass(frozen=True)
class Certificate:
    """What the monitor read of one ``https`` URL's certificate."""

    url: str
    days: float | None
    expires: str = ""
    error: str = ""

    def below(self, threshold: int) -> bool:
        """Whether it expires in fewer than ``threshold`` days (0: never alert)."""
        return threshold > 0 and self.days is not None and self.days < threshold

    def describe(self) -> str:
        """``certificate of HOST:PORT expires in N days (DATE)``, or why unknown."""
        where = _origin(self.url)
        if self.days is None:
            return f"certificate of {where} not read: {self.error}"
        if self.days < 0:
            return f"certificate of {where} EXPIRED on {self.expires}"
        return (
            f"certificate of {where} expires in {int(self.days)} days "
            f"({self.expires})"
        )


def https_urls(target: Target) -> list[str]:
    """The ``https`` URLs whose certificates the monitor reads, one per origin.

    The public URLs (``monitor.urls``) and the health checks' URLs; a loopback URL
    of a host reached over SSH is left out (only that host can reach it).
    """
    urls = [*target.settings.monitor.urls]
    urls += [check.url for check in target.settings.health.checks]
    seen: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            continue
        if target.runner.remote and _loopback(parts.hostname):
            continue
        seen.setdefault(_origin(url), url)
    return list(seen.values())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 443}"


def certificate(url: str, *, timeout: float = TIMEOUT) -> Certificate:
    """Read the certificate an ``https`` URL presents and its days left.

    It is read, not verified (the HTTP check verifies it): an expiring certificate
    is worth an alert whoever signed it. Never raises: a failure is in ``error``.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            server_name = None if _is_address(host) else host
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as error:
        return Certificate(url, None, error=_os_error(error))
    if not der:
        return Certificate(url, None, error="no certificate presented")
    from cryptography import x509

    expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    return Certificate(url, days, expires.strftime("%Y-%m-%d %H:%M UTC"))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _os_error(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def visit(url: str, *, timeout: float = TIMEOUT) -> str | None:
    """GET a public URL as a visitor's browser would; None when it answers.

    Unlike the health checks (which go straight to the app), this honours the
    machine's proxy and CA settings (``HTTPS_PROXY``, ``REQUESTS_CA_BUNDLE``) and
    verifies ``https``: a certificate a browser refuses is an outage for visitors.

    Returns:
        Why the URL is not answering (a status of 400 or more counts), or None.
    """
    import requests

    try:
        response = requests.get(
            url, timeout=timeout, headers={"User-Agent": "cicd-monitor/1"}
        )
    except requests.exceptions.SSLError as error:
        reason = str(error.args[0] if error.args else error)
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
            return "certificate refused (not trusted, expired or for another name)"
        return "TLS handshake failed"
    except requests.RequestException as error:
        return _describe_error(error)
    if response.status_code >= 400:
        return f"status {response.status_code}"
    return None


def _describe_error(error: Exception) -> str:
    """Say in a few words why a request failed (requests' own text is a paragraph)."""
    import requests

    if isinstance(error, requests.Timeout):
        return "timed out"
    text = str(error)
    if isinstance(error, requests.ConnectionError):
        if "Connection refused" in text:
            return "connection refused"
        return "cannot connect"
    first = text.strip().splitlines()[0] if text.strip() else "no detail"
    return redact(f"{type(error).__name__}: {first}")


@dataclass(frozen=True)
class Outside:
    """One public URL checked from outside the VM (``invoke health --url``)."""

    url: str
    ok: bool
    reason: str
    checks: int
    certificate: Certificate | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as ``--json`` prints it."""
        return {
            "ok": self.ok,
            "detail": self.reason,
            "checks": self.checks,
            "certificate": asdict(self.certificate) if self.certificate else None,
        }


def check_outside(
    urls: Sequence[str],
    notifier: Notifier,
    rules: MonitorSettings = DEFAULT_RULES,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outside]:
    """Check public URLs from here (a GitHub-hosted runner), so a dead VM is noticed.

    Nothing is kept between runs (there is no host to keep it on): a failure is
    confirmed within the run instead, ``failures`` checks ``retry_interval`` apart,
    and only then alerted. The VM's own monitor keeps the state and the reminders.

    Returns:
        One result per URL, in order.
    """
    results = []
    for url in urls:
        checks, why = 1, visit(url)
        while why is not None and checks < rules.failures:
            sleep(rules.retry_interval)
            checks, why = checks + 1, visit(url)
        cert = certificate(url) if urlsplit(url).scheme == "https" else None
        results.append(Outside(url, why is None, why or "ok", checks, cert))
        if why is not None:
            notifier.send(
                f"🔴 {url} is DOWN seen from outside the VM ({checks} failed checks "
                f"in a row): {why}"
            )
    return results

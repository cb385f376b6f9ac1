"""The monitor's certificate words and which URLs it reads certificates of."""

from __future__ import annotations

from types import SimpleNamespace

from cicd.core.health_check import HealthCheck
from cicd.pipeline.outside import Certificate, https_urls


def test_certificate_words_and_threshold() -> None:
    expired = Certificate("https://example.test/", -2.5, "2026-03-01 00:00 UTC")
    assert expired.describe() == (
        "certificate of example.test:443 EXPIRED on 2026-03-01 00:00 UTC"
    )
    assert expired.below(14) and not expired.below(0)  # 0: no certificate alert
    fine = Certificate("https://example.test:8443/", 80.2, "2026-06-01 00:00 UTC")
    assert fine.describe().startswith("certificate of example.test:8443 expires in 80")
    assert not fine.below(14)
    assert not Certificate("https://example.test/", None, error="x").below(14)


def fake_target(remote: bool, urls: tuple[str, ...], checks: list[str]) -> object:
    """What https_urls reads of a Target: its settings and whether it is remote."""
    settings = SimpleNamespace(
        monitor=SimpleNamespace(urls=urls),
        health=SimpleNamespace(checks=[HealthCheck(url=u) for u in checks]),
    )
    return SimpleNamespace(settings=settings, runner=SimpleNamespace(remote=remote))


def test_one_certificate_per_origin_and_no_loopback_over_ssh() -> None:
    public = ("https://mangetamain.example/", "https://mangetamain.example/about")
    checks = [
        "http://127.0.0.1:8500/_stcore/health",
        "https://127.0.0.1:8443/",
        "https://localhost:9443/",
        "https://[::1]:7443/",
    ]
    local = https_urls(fake_target(False, public, checks))  # type: ignore[arg-type]
    assert local == [
        "https://mangetamain.example/",
        "https://127.0.0.1:8443/",
        "https://localhost:9443/",
        "https://[::1]:7443/",
    ]
    remote = https_urls(fake_target(True, public, checks))  # type: ignore[arg-type]
    assert remote == ["https://mangetamain.example/"]

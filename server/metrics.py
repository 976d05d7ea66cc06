"""Prometheus metrics, one registry per application (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tetra_http_requests_total", "HTTP requests", ["protocol", "method", "status"], registry=self.registry
        )
        self.issued = Counter(
            "tetra_certificates_issued_total", "Certificates issued", ["protocol", "profile"], registry=self.registry
        )
        self.issuance_seconds = Histogram(
            "tetra_issuance_seconds",
            "Time from policy decision to stored certificate",
            ["protocol", "profile"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.errors = Counter(
            "tetra_errors_total", "Requests refused or failed", ["protocol", "reason"], registry=self.registry
        )
        self.refused = Counter(
            "tetra_http_refused_total",
            "Connections and requests a listener refused or cut off before any protocol saw them",
            ["reason"],  # server.limits.Refusal
            registry=self.registry,
        )
        self.revoked = Counter(
            "tetra_certificates_revoked_total", "Certificates revoked", ["issuer"], registry=self.registry
        )

    def observe_issuance(self, protocol: str, profile: str, seconds: float) -> None:
        self.issued.labels(protocol, profile).inc()
        self.issuance_seconds.labels(protocol, profile).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

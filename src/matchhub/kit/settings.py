"""The one settings object (prefix ``MATCHHUB_``).

Nothing here is read at import time: :func:`Settings` is built by the CLI or a test and handed
to :func:`matchhub.web.app.create_app`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATCHHUB_", extra="ignore")

    home: Path = Field(default=Path("./var"), description="State folder: database, PKI, keys.")
    environment: Environment = Environment.development
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; defaults to a SQLite file in the home folder."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    server_names: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1"])
    client_cert_source: Literal["tls", "proxy"] = "tls"
    trusted_proxy_fingerprints: list[str] = Field(
        default_factory=list,
        description="SHA-256 fingerprints of the client certificates an mTLS-terminating proxy "
        "presents to the broker; only their forwarded-certificate header is believed "
        "(client_cert_source=proxy). Never a source address.",
    )
    hub_name: str = Field(default="matchhub", description="Names the hub in certificates.")
    max_chunk_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="A JSON request body is at most this many bytes (a chunk: max_chunk_bytes); "
        "a larger one is refused 413 before it is read.",
    )
    tls_handshake_seconds: float = Field(
        default=10.0, gt=0, description="A TLS handshake not finished this long is dropped."
    )
    request_header_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection that has not sent a request's whole header this long after "
        "its handshake or its previous answer is closed.",
    )
    request_body_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A request body not wholly arrived this long after its header is refused "
        "408 and its connection closed.",
    )
    request_idle_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request body from which nothing arrives for this long is refused 408 "
        "and its connection closed.",
    )
    upload_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="An open upload untouched this long expires."
    )
    max_open_uploads_per_agency: int = Field(
        default=16,
        ge=1,
        description="Uploads one agency may have open at once; one more is refused 429 "
        "too_many_open_uploads until one is committed, aborted or expires.",
    )
    max_queued_jobs_per_consumer: int = Field(
        default=4,
        ge=1,
        description="Match jobs one consumer may have waiting for a worker; one more is "
        "refused 429 too_many_queued_jobs.",
    )
    janitor_interval_seconds: float = Field(default=60.0, gt=0)
    request_concurrency: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Requests inside the app at once, per process; the database pool holds as "
        "many connections (plus a few for background work), the rest wait their turn.",
    )
    lookup_max_tokens: int = Field(default=1000, ge=1, le=100_000)
    lookup_rate_per_second: float = Field(
        default=50.0,
        gt=0,
        description="Lookup requests per second per agency (sustained), across every serving "
        "process.",
    )
    lookup_burst: int = Field(default=200, ge=1, description="Lookup requests allowed at once.")
    witness_rate_per_second: float = Field(
        default=5.0,
        gt=0,
        description="Witness requests (GET /v1/audit/checkpoint and consistency proofs) per "
        "second per agency, across every serving process; a connector asks three a push.",
    )
    witness_burst: int = Field(default=60, ge=1, description="Witness requests allowed at once.")
    lookup_view_max_rows: int = Field(
        default=100_000_000,
        ge=0,
        description="Lookups answer from an in-memory view of the current snapshots (16 bytes "
        "a row) while they hold at most this many rows; beyond it, or at 0, from SQL.",
    )
    lookup_view_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        description="How often the view checks the hub's generation. Correctness does not "
        "depend on it (every answer from the view is checked when its audit entry commits).",
    )
    serve_background: bool = Field(
        default=True,
        description="Whether `matchhub serve` also runs the background work (match jobs, "
        "purges, retention, checkpoints). On by default, so one process does everything; "
        "the production units turn it off and run `matchhub worker` processes instead.",
    )
    heartbeat_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each broker process stamps its row in broker_processes; the "
        "serving processes alive divide each agency's lookup rate between them.",
    )
    job_workers: int = Field(default=1, ge=0, description="Match-job threads per process.")
    job_poll_seconds: float = Field(default=0.5, gt=0)
    job_lease_seconds: float = Field(
        default=60.0, gt=0, description="A running job not renewed this long is re-run."
    )
    job_max_attempts: int = Field(default=3, ge=1)
    result_retention_days: float = Field(
        default=90.0,
        gt=0,
        le=36500,
        description="A match job's results are deleted this long after it ran.",
    )
    case_lapse_days: float = Field(
        default=60.0,
        gt=0,
        le=36500,
        description="An indication not taken up (moved to verifying) this long after it was "
        "opened lapses and may not be acted on.",
    )
    case_notice_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="The response period after a notice, for a purpose the operator gave none "
        "(`matchhub purposes notice`).",
    )
    case_retention_days: float = Field(
        default=365.0,
        gt=0,
        le=36500,
        description="Closed and lapsed cases are deleted this long after they ended, each "
        "deletion receipted in the audit log.",
    )
    feedback_min_count: int = Field(
        default=10,
        ge=1,
        description="A provider's feedback shows no count below this: the cell is suppressed.",
    )
    audit_checkpoint_every: int = Field(
        default=1000, ge=1, description="Sign a checkpoint every this many entries..."
    )
    audit_checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="...or when entries have waited this long."
    )
    audit_enabled: bool = Field(
        default=True,
        description="Only the benchmarks switch this off, to measure what the audit log costs. "
        "Refused outside development.",
    )
    job_fault_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Fault injection for tests: a claimed job waits this long before it runs, "
        "so a test can kill the broker mid-job. Refused in production.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.client_cert_source == "proxy" and not self.trusted_proxy_fingerprints:
            raise ValueError("client_cert_source=proxy needs trusted_proxy_fingerprints")
        if self.environment is Environment.production and not self.audit_enabled:
            raise ValueError("the audit log cannot be switched off in production")
        if self.environment is Environment.production and self.job_fault_delay_seconds:
            raise ValueError("job_fault_delay_seconds is for tests; refusing it in production")
        if self.environment is Environment.production and (self.home / "DEMO").exists():
            raise ValueError(
                f"{self.home} holds demo keys (a DEMO marker): refusing to run in production"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'matchhub.db').resolve()}"

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.home)


class StatePaths:
    """Where each file of the state folder lives, in one place."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pki = home / "pki"
        self.keys = home / "keys"
        self.ca_cert = self.pki / "ca.pem"
        self.ca_key = self.pki / "ca-key.pem"
        self.server_cert = self.pki / "server.pem"
        self.server_key = self.pki / "server-key.pem"
        self.crl = self.pki / "crl.pem"
        self.broker_key = self.keys / "broker.key"
        self.audit_signing_key = self.keys / "audit-signing-key.pem"
        self.audit_public_key = self.keys / "audit-signing-key.pub"
        self.audit_subject_key = self.keys / "audit-subject.key"
        self.segments = home / "segments"  # snapshot segments (kit/segments.py), 0700

    def secrets(self) -> list[Path]:
        return [
            self.ca_key,
            self.server_key,
            self.broker_key,
            self.audit_signing_key,
            self.audit_subject_key,
        ]

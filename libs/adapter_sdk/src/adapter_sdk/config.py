"""Configuration schema of an adapter: the service settings every process has, plus what
talking to an agency needs. An adapter extends it with its own settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from guichet_runtime.settings import ServiceSettings


class AdapterConfig(ServiceSettings):
    """Read from the environment (pydantic-settings): AGENCY_BASE_URL, AGENCY_TIMEOUT_SECONDS…"""

    service_name: str = Field(default="", description="Defaults to adapter-<agency>.")
    database_url: str = Field(default="", description="Defaults to a SQLite file per agency.")
    http_port: int = 8010
    agency_base_url: str = Field(
        default="http://127.0.0.1:8100", description="Base URL of the agency's system."
    )
    agency_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one call to the agency."
    )
    callback_base_url: str = Field(
        default="",
        description=(
            "Public URL of this adapter, given to agencies that call back (default: its "
            "own address)."
        ),
    )
    callback_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret shared with an asynchronous agency: its callbacks are signed with it "
        "(HMAC-SHA256, header X-Signature, see adapter_sdk.signatures). Required outside dev.",
    )
    callback_secret_previous: SecretStr = Field(
        default=SecretStr(""),
        description="The previous secret, still accepted during a rotation; empty: none.",
    )
    callback_replay_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A callback signed longer ago (or later) than this is refused; signatures "
        "taken are kept this long so that an exact replay is refused.",
    )
    agency_concurrency: int = Field(
        default=8,
        ge=1,
        description="Requests and documents handled at once, each in its own transactions (the "
        "records of one file in their order): at most this many calls to the agency in flight, "
        "one offset commit for all of them. 1: one at a time.",
    )
    attempts: int = Field(
        default=4,
        ge=1,
        description=(
            "Calls per delivery for a failing or garbled answer, before the dead-letter topic."
        ),
    )
    backoff_seconds: float = Field(
        default=0.2, ge=0, description="First wait between two attempts (doubles each time)."
    )
    backoff_max_seconds: float = Field(
        default=5.0, ge=0, description="Longest wait between two attempts."
    )
    breaker_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures that open the circuit."
    )
    breaker_seconds: float = Field(
        default=5.0, gt=0, description="How long the circuit stays open before a trial call."
    )
    unavailable_pause_seconds: float = Field(
        default=2.0,
        ge=0,
        description="Pause before a delivery is handed back while the agency is unreachable.",
    )
    reconcile_first_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Asynchronous agencies: how long after the acknowledgement the agency is "
        "first asked for the state of a request still without a decision (a callback may be lost).",
    )
    reconcile_backoff_factor: float = Field(
        default=2.0,
        ge=1,
        description="Each further status poll waits this many times longer than the last.",
    )
    reconcile_max_seconds: float = Field(
        default=3600.0, gt=0, description="Longest wait between two status polls."
    )
    reconcile_tick_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the reconciliation worker looks for requests due for a poll.",
    )
    overdue_seconds: float = Field(
        default=432000.0,
        gt=0,
        description="A request acknowledged without a decision for longer than this is overdue "
        "(default five days, assignment's STUCK_REQUEST_DAYS: the alert "
        "GuichetAgencyRequestsStuck fires on it).",
    )

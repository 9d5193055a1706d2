"""Intake's settings (environment variables, see guichet_runtime.settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from guichet_runtime.settings import ServiceSettings
from intake.domain import DEFAULT_MIN_FILES


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8000
    database_url: str = "sqlite+aiosqlite:///var/data/intake.db"
    indicators_min_files: int = Field(
        default=DEFAULT_MIN_FILES,
        ge=1,
        description="Published indicators leave out groups of fewer files (and means of fewer "
        "survey answers).",
    )
    indicators_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long computed indicators are served again before being recomputed.",
    )
    access_code_key: SecretStr = Field(
        default=SecretStr(""),
        description="Seals the one-time access codes for the notification service (AES-256-GCM; "
        "base64 of 32 bytes, the same value as notification's). No default: intake refuses "
        "to start without it.",
    )

"""Configuration of the web service, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from guichet_runtime.settings import ServiceSettings

# services/web/node_modules, filled by `npm ci` (make setup); the image sets ASSETS_DIR.
_DEFAULT_ASSETS = Path(__file__).resolve().parents[2] / "node_modules"


class WebSettings(ServiceSettings):
    service_name: str = "web"
    http_port: int = 8003
    intake_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of intake's HTTP API."
    )
    assignment_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of assignment's HTTP API."
    )
    notification_url: str = Field(
        default="http://127.0.0.1:8002",
        description="Base URL of notification's HTTP API (its part of the citizen's export).",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/data/web.db",
        description="The web's own database: the server-side sessions.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Keys the sessions kept server-side: the stored id is an HMAC of the "
        "cookie's random id, and the session's content is encrypted with a key derived from "
        "it. No default: required outside ENVIRONMENT=dev; in dev generated once in "
        "SECRETS_DIR.",
    )
    secure_cookies: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (on in production)."
    )
    session_idle_minutes: int = Field(
        default=30, ge=1, description="A session unused this long is over (sign in again)."
    )
    session_lifetime_hours: float = Field(
        default=10, gt=0, description="A session ends this long after it began, used or not."
    )
    public_url: str | None = Field(
        default=None,
        description="The pages' public base URL (https://…), for the login's redirect URI; "
        "unset: from the request's Host.",
    )
    login_agents_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the agents' provider (ProConnect; Keycloak realm `agents` in "
        "dev), found by discovery; unset: agents cannot sign in.",
    )
    login_agents_client_id: str = Field(default="web", description="The pages' client id there.")
    login_agents_client_secret: SecretStr | None = Field(
        default=None, description="The pages' client secret there (required with the issuer)."
    )
    login_citizens_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the citizens' provider (FranceConnect; Keycloak realm "
        "`citoyens` in dev); unset: citizens follow their files with a code only.",
    )
    login_citizens_client_id: str = Field(default="web", description="The pages' client id there.")
    login_citizens_client_secret: SecretStr | None = Field(
        default=None, description="The pages' client secret there (required with the issuer)."
    )
    assets_dir: Path = Field(
        default=_DEFAULT_ASSETS, description="node_modules holding @gouvfr/dsfr."
    )
    backend_timeout_seconds: float = 10.0
    receipt_wait_seconds: float = Field(
        default=8.0, description="How long the counter receipt waits for the référent to be named."
    )
    document_max_bytes: int = Field(
        default=512 * 1024,
        description=(
            "Largest supporting document the pages read and forward (intake enforces the "
            "same limit)."
        ),
    )
    file_access_minutes: int = Field(
        default=30, description="How long a code opens a file in this browser."
    )
    deadline_risk_days: int = Field(
        default=21, description="Supervisors see files due within this many days."
    )

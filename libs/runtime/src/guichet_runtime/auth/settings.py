"""Token verification settings, read from the environment (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from guichet_runtime.auth.principal import IssuerKind


class AuthSettings(BaseSettings):
    """`OIDC_ISSUERS='{"https://…/realms/citoyens": "citizen", "https://…/agents": "agent"}'`
    and `OIDC_AUDIENCE=intake`; the rest has sensible defaults."""

    model_config = SettingsConfigDict(env_prefix="OIDC_", extra="ignore")

    issuers: dict[str, IssuerKind] = Field(
        default_factory=dict,
        description="Trusted issuer URLs (exactly as in the tokens' `iss`) and what each vouches "
        "for: FranceConnect -> citizen, ProConnect -> agent. JSON object.",
    )
    audience: str | None = Field(
        default=None, description="This service's audience: tokens must carry it in `aud`."
    )
    algorithms: list[str] = Field(
        default=["RS256", "PS256", "ES256"],
        description="Accepted signature algorithms (asymmetric only).",
    )
    leeway_seconds: float = Field(
        default=10, description="Clock skew tolerated on exp, nbf and iat."
    )
    jwks_min_refresh_seconds: float = Field(
        default=30,
        description="Floor between two JWKS fetches of one issuer when an unknown key id "
        "shows up: forged key ids cannot make us hammer the provider.",
    )
    jwks_max_age_seconds: float = Field(
        default=3600, description="A JWKS older than this is fetched again before use."
    )
    http_timeout_seconds: float = Field(
        default=5, description="Timeout of discovery and JWKS requests."
    )

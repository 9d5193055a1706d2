"""Authentication: standard OpenID Connect access tokens -> the caller's `Principal`.

`principal` (who: kinds, roles, claims mapping), `verifier` (PyJWT + JWKS cache with key
rotation), `settings` (OIDC_* environment), `dependencies` (FastAPI). Authorisation policies
(who may do what) build on `Principal`; see docs/security.md.
"""

from guichet_runtime.auth.dependencies import (
    bearer_scheme,
    current_principal,
    install_token_verifier,
    optional_principal,
    token_verifier,
)
from guichet_runtime.auth.principal import (
    IssuerKind,
    Principal,
    PrincipalKind,
    Role,
    principal_from_claims,
)
from guichet_runtime.auth.settings import AuthSettings
from guichet_runtime.auth.verifier import IssuerKeys, TokenVerifier

__all__ = [
    "AuthSettings",
    "IssuerKeys",
    "IssuerKind",
    "Principal",
    "PrincipalKind",
    "Role",
    "TokenVerifier",
    "bearer_scheme",
    "current_principal",
    "install_token_verifier",
    "optional_principal",
    "principal_from_claims",
    "token_verifier",
]

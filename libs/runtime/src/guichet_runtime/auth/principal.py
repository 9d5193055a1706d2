"""Who is calling, as the services see it: a `Principal` built from a verified token's claims.

The claims are those of deploy/keycloak/realms/ (see docs/security.md); FranceConnect and
ProConnect give the standard ones (`sub`, names, email), the directory-specific ones
(`agent_id`, `offices`, `roles`) then come from a mapping at the provider or the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PrincipalKind(StrEnum):
    """What sort of caller a principal is."""

    CITIZEN = "citizen"  # a person, through FranceConnect (Keycloak realm `citoyens` in dev)
    AGENT = "agent"  # a public servant, through ProConnect (realm `agents` in dev)
    AGENCY = "agency"  # an agency's system (CAF, DGFiP…), a service account
    SERVICE = "service"  # one of our own services (assignment, an adapter…), a service account
    ANONYMOUS = "anonymous"  # no token


class IssuerKind(StrEnum):
    """What an issuer vouches for; configured per issuer URL (OIDC_ISSUERS)."""

    CITIZEN = "citizen"  # its tokens are citizens'
    AGENT = "agent"  # its tokens are agents', or agencies' service accounts (claim `agency`)


class Role(StrEnum):
    """The agents' roles (realm roles of `agents`); other role names in a token are ignored."""

    GUICHET = "guichet"  # front desk: France Services counter, phone line, mail room
    REFERENT = "referent"  # the named agent who answers for a file
    SUPERVISEUR = "superviseur"  # supervises the offices of the `offices` claim
    ADMIN_ANNUAIRE = "admin-annuaire"  # directory administrator: imports, agents joining
    #: A service's account only: reads the citizens' data keys from intake's key service.
    PERSONAL_DATA_READER = "personal-data-reader"


class Principal(BaseModel):
    """The authenticated caller (or the anonymous one) handed to routes and policies."""

    model_config = ConfigDict(frozen=True)

    kind: PrincipalKind = Field(description="Citizen, agent, agency's system or anonymous.")
    subject: str | None = Field(
        default=None, description="The provider's stable identifier of the caller (`sub`)."
    )
    issuer: str | None = Field(default=None, description="Issuer URL of the verified token.")
    client_id: str | None = Field(
        default=None, description="The OIDC client the token was issued to (`azp`)."
    )
    roles: frozenset[Role] = Field(
        default=frozenset(), description="The agent's roles; empty for anyone else."
    )
    agent_id: str | None = Field(
        default=None, description="The agent's (or supervisor's) id in the directory."
    )
    offices: frozenset[str] = Field(
        default=frozenset(), description="Ids of the France Services offices a supervisor oversees."
    )
    agency: str | None = Field(
        default=None, description="The agency code of an agency's system (caf, dgfip…)."
    )
    service: str | None = Field(
        default=None, description="The name of one of our services calling as itself."
    )
    name: str | None = Field(default=None, description="Display name, when the token has one.")
    email: str | None = Field(default=None, description="Email, when the token has one.")

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(kind=PrincipalKind.ANONYMOUS)

    @property
    def is_anonymous(self) -> bool:
        return self.kind is PrincipalKind.ANONYMOUS

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def supervises(self, office_id: str) -> bool:
        """A supervisor of this office."""
        return Role.SUPERVISEUR in self.roles and office_id in self.offices


def _strings(value: Any) -> list[str]:
    """A claim that may be one string or a list of them (multivalued mappers)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        return [v for v in value if isinstance(v, str)]
    return []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _roles(claims: Mapping[str, Any]) -> frozenset[Role]:
    """Known roles from the flat `roles` claim, else Keycloak's `realm_access.roles`."""
    names = _strings(claims.get("roles"))
    if not names and isinstance(realm_access := claims.get("realm_access"), Mapping):
        names = _strings(realm_access.get("roles"))
    known = {r.value for r in Role}
    return frozenset(Role(n) for n in names if n in known)


def _display_name(claims: Mapping[str, Any]) -> str | None:
    if name := _string(claims.get("name")):
        return name
    parts = [_string(claims.get("given_name")), _string(claims.get("family_name"))]
    return " ".join(p for p in parts if p) or None


def principal_from_claims(claims: Mapping[str, Any], issuer_kind: IssuerKind) -> Principal:
    """The principal of a verified token from an issuer of `issuer_kind`.

    A citizens' issuer only ever yields citizens (no roles, no agency, whatever the token
    says). An agents' issuer yields an agency's system when the token carries `agency`
    (set by the agency client's mapper), one of our services when it carries `service` (set
    by the service client's mapper; its only role is `personal-data-reader`), else an agent
    with their roles and directory ids (never `personal-data-reader`).
    """
    common: dict[str, Any] = {
        "subject": _string(claims.get("sub")),
        "issuer": _string(claims.get("iss")),
        "client_id": _string(claims.get("azp")) or _string(claims.get("client_id")),
        "email": _string(claims.get("email")),
        "name": _display_name(claims),
    }
    if issuer_kind is IssuerKind.CITIZEN:
        return Principal(kind=PrincipalKind.CITIZEN, **common)
    if agency := _string(claims.get("agency")):
        return Principal(kind=PrincipalKind.AGENCY, agency=agency, **common)
    roles = _roles(claims)
    if service := _string(claims.get("service")):
        only = roles & {Role.PERSONAL_DATA_READER}
        return Principal(kind=PrincipalKind.SERVICE, service=service, roles=only, **common)
    return Principal(
        kind=PrincipalKind.AGENT,
        roles=roles - {Role.PERSONAL_DATA_READER},
        agent_id=_string(claims.get("agent_id")),
        offices=frozenset(_strings(claims.get("offices"))),
        **common,
    )

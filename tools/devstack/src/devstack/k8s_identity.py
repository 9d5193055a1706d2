"""Who the workloads trust to sign people in (devstack.k8s uses it): the identity providers'
issuer URLs live in one ConfigMap per overlay, `identity-providers` (deploy/k8s/overlays/*/
identity-providers.yaml, hand-written: production's are placeholders of the broker realms in
front of FranceConnect and ProConnect, dev's the Keycloak realms of deploy/keycloak/realms).
The services that verify tokens read OIDC_ISSUERS from it, the web its LOGIN_*_ISSUER; so the
issuers the pages sign people in at are the ones the services trust, in every overlay."""

from __future__ import annotations

from typing import Any

IDENTITY_CONFIGMAP = "identity-providers"
#: Placeholder of the identity providers' address range (TEST-NET-2, RFC 5737): replace it
#: with the broker's (docs/operations.md, "Identity providers").
IDP_CIDR = "198.51.100.0/24"
#: Variable -> key of the ConfigMap: what a token-verifying service reads.
VERIFIER_KEYS = {"OIDC_ISSUERS": "OIDC_ISSUERS"}
#: What a service reading citizens' data keys reads: where it gets its client-credentials
#: token for intake's key service (the agents' issuer's token endpoint).
KEY_READER_KEYS = {"KEY_SERVICE_TOKEN_URL": "KEY_SERVICE_TOKEN_URL"}
#: What the pages read to sign agents and citizens in.
LOGIN_KEYS = {
    "LOGIN_AGENTS_ISSUER": "LOGIN_AGENTS_ISSUER",
    "LOGIN_CITIZENS_ISSUER": "LOGIN_CITIZENS_ISSUER",
}


def identity_env(keys: dict[str, str]) -> list[dict[str, Any]]:
    """Variables read from the overlay's `identity-providers` ConfigMap."""
    return [
        {
            "name": name,
            "valueFrom": {"configMapKeyRef": {"name": IDENTITY_CONFIGMAP, "key": key}},
        }
        for name, key in keys.items()
    ]


def identity_egress() -> dict[str, Any]:
    """Discovery, keys (JWKS) and, for the pages, the token endpoint: HTTPS to the providers."""
    return {
        "to": [{"ipBlock": {"cidr": IDP_CIDR}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }

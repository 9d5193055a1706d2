"""The routing address a citizen's email reply goes to: ``reponse+<file_id>.<signature>@<domain>``.

Notification puts it in the ``Reply-To`` of the emails carrying a référent's message;
intake's inbound SMTP listener accepts mail only at an address whose signature verifies.
The signature is a truncated HMAC-SHA256 of the file id under REPLY_ADDRESS_KEY, a secret
both services share: nobody without the key can make up the address of a file
(docs/security.md, "Replies by email")."""

from __future__ import annotations

import hashlib
import hmac
import re

LOCAL_PREFIX = "reponse"
#: Hex characters kept of the HMAC: 80 bits, far beyond guessing over SMTP.
SIGNATURE_CHARS = 20
_ADDRESS = re.compile(
    rf"^{LOCAL_PREFIX}\+(?P<file_id>[A-Za-z0-9_-]{{1,64}})\.(?P<sig>[0-9a-f]{{{SIGNATURE_CHARS}}})"
    r"@(?P<domain>[^@\s]+)$"
)


def signature(file_id: str, key: str) -> str:
    """The file's signature under `key` (truncated HMAC-SHA256, hex)."""
    digest = hmac.new(key.encode(), file_id.encode(), hashlib.sha256).hexdigest()
    return digest[:SIGNATURE_CHARS]


def reply_address(file_id: str, key: str, domain: str) -> str:
    """Where the citizen's reply about `file_id` goes."""
    return f"{LOCAL_PREFIX}+{file_id}.{signature(file_id, key)}@{domain}"


def file_of(address: str, key: str, domain: str | None = None, previous: str = "") -> str | None:
    """The file id a routing address names if its signature verifies under `key`, or under
    `previous` (the key before a rotation, while the addresses it signed are still in the
    citizens' mailboxes), and its domain is `domain` (case-insensitive, when given); None
    otherwise."""
    if not key:
        return None
    found = _ADDRESS.match(address.strip().strip("<>"))
    if found is None:
        return None
    if domain is not None and found["domain"].lower() != domain.lower():
        return None
    file_id = found["file_id"]
    for verifying in (key, previous):
        if verifying and hmac.compare_digest(found["sig"], signature(file_id, verifying)):
            return file_id
    return None

"""The contract kit's check of unreadable answers: garbage the agency's system might send
(an HTML error page, an empty body, a truncated XML…) must be refused by the adapter, never
passed on as a decision."""

from __future__ import annotations

from adapter_sdk.interface import AgencyAdapter, AgencyReply, AnswerInvalid, offers_status
from adapter_sdk.reconcile import read_status_checked
from adapter_sdk.translation import checked

GARBAGE: list[tuple[str, bytes]] = [
    ("une page HTML d'erreur", b"<html><body>Erreur interne du frontal</body></html>"),
    ("un corps vide", b""),
    ("un JSON sans décision", b'{"statut": "OK", "code": 0}'),
    ("des octets quelconques", b"\x00\xff\xfe garbage"),
    ("un XML tronqué", b"<soap:Envelope><soap:Bo"),
]


def garbage_problems(adapter: AgencyAdapter) -> list[str]:
    """What the adapter wrongly accepted, in French (empty: every garbage refused)."""
    problems: list[str] = []
    for what, body in GARBAGE:
        for status in (200,):
            try:
                result = checked(adapter.read_answer, AgencyReply(status, body, {}))
            except AnswerInvalid:
                continue
            problems.append(
                f"read_answer a accepté {what} et en a fait {type(result).__name__} : "
                f"levez AnswerInvalid quand la réponse ne peut pas être lue"
            )
        if adapter.declaration.asynchronous:
            try:
                callback = adapter.read_callback(body, {})
                problems.append(f"read_callback a accepté {what} (rappel {callback.callback_id!r})")
            except Exception:
                pass
        if adapter.declaration.asynchronous and offers_status(adapter):
            try:
                read = read_status_checked(adapter, AgencyReply(200, body, {}))
                problems.append(f"read_status a accepté {what} et en a fait {read!r}")
            except AnswerInvalid:
                pass
    return problems

"""Both edges of an adapter's translation, as the runtime and the contract test kit run
them: the canonical request the adapter is given (only its declared citizen fields), and
the checked reading of the agency's reply (anything unreadable or incoherent is
AnswerInvalid)."""

from __future__ import annotations

from collections.abc import Callable

from adapter_sdk.interface import (
    Acknowledged,
    AgencyAnswer,
    AgencyReply,
    AnswerInvalid,
    CanonicalRequest,
    CitizenData,
    answer_problems,
)
from shared_models import AgencyRequestIssued


class RequestIncomplete(ValueError):
    """The request does not carry a citizen field the adapter declares (the catalogue in
    use lists fewer fields for the agency than its declaration: see the contract kit)."""


def canonical_request(
    event: AgencyRequestIssued, declared: frozenset[str], callback_url: str | None
) -> CanonicalRequest:
    """The request as the adapter sees it: only the declared citizen fields survive (the
    core already sent only the catalogue's; a request issued before minimisation carried
    everything)."""
    values = event.citizen.model_dump(mode="json")
    missing = sorted(declared - values.keys())
    if missing:
        raise RequestIncomplete(
            f"la demande {event.request_id} ne porte pas les champs citoyen déclarés "
            f"{', '.join(missing)} : le catalogue ([citizen_fields]) et la déclaration de "
            f"l'adaptateur divergent"
        )
    return CanonicalRequest(
        request_id=event.request_id,
        file_id=event.file_id,
        life_event=event.life_event,
        urgent=event.urgent,
        citizen=CitizenData(values, declared),
        callback_url=callback_url,
    )


def checked(
    read: Callable[[AgencyReply], AgencyAnswer | Acknowledged], reply: AgencyReply
) -> AgencyAnswer | Acknowledged:
    """Run the adapter's reading of a reply; anything unreadable or incoherent is AnswerInvalid."""
    try:
        result = read(reply)
    except AnswerInvalid:
        raise
    except Exception as exc:
        # The adapter choked on the reply: garbage or a schema it does not know.
        raise AnswerInvalid(f"réponse illisible ({type(exc).__name__}: {exc})") from exc
    if isinstance(result, AgencyAnswer):
        problems = answer_problems(result)
        if problems:
            raise AnswerInvalid("réponse incohérente : " + "; ".join(problems))
    elif not isinstance(result, Acknowledged):
        raise AnswerInvalid(
            f"l'adaptateur a rendu {type(result).__name__}, ni réponse ni accusé de réception"
        )
    return result

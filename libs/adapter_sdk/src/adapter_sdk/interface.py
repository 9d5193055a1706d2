"""The one small interface an agency implements.

An adapter is pure translation: our canonical request becomes an `AgencyCall` (what to
send over HTTP), the agency's `AgencyReply` becomes an `AgencyAnswer` (or an
acknowledgement when it answers later). It never opens a socket, never retries, never
touches Kafka or a database: the runtime does that, once for every agency.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from adapter_sdk.config import AdapterConfig
from adapter_sdk.declaration import CITIZEN_FIELDS, Declaration
from shared_models import Decision, RequestedDocument


class AnswerInvalid(Exception):
    """The agency answered something that is not a valid answer (garbage, wrong schema)."""


class UndeclaredField(KeyError):
    """The adapter read a citizen field its declaration does not list."""

    def __str__(self) -> str:
        return f"le champ citoyen « {self.args[0]} » n'est pas déclaré (citizen_fields)"


class CitizenData(Mapping[str, Any]):
    """The citizen's data, reduced to the declared fields: reading another one raises."""

    def __init__(self, values: Mapping[str, Any], declared: frozenset[str]) -> None:
        self._values = {k: v for k, v in values.items() if k in declared}
        self._declared = declared

    def __getitem__(self, name: str) -> Any:
        if name not in self._declared:
            raise UndeclaredField(name)
        return self._values.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class CanonicalRequest:
    """What the runtime hands an adapter: the file's request, minimised."""

    request_id: str
    file_id: str
    life_event: str
    urgent: bool
    citizen: CitizenData
    callback_url: str | None = None


@dataclass(frozen=True)
class SupportingDocument:
    """A document the citizen sent, to forward to the agency."""

    request_id: str
    agency_reference: str
    code: str
    filename: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class AgencyCall:
    """One HTTP call to the agency's system (path relative to its base URL)."""

    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"

    @classmethod
    def json(cls, path: str, data: Any, headers: Mapping[str, str] | None = None) -> AgencyCall:
        body = json.dumps(data, ensure_ascii=False, default=str).encode()
        return cls(path, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def xml(cls, path: str, text: str, headers: Mapping[str, str] | None = None) -> AgencyCall:
        return cls(
            path, text.encode(), {"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
        )


@dataclass(frozen=True)
class AgencyReply:
    """What the agency's system answered (any 2xx; other statuses are the runtime's)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AnswerInvalid(f"réponse qui n'est pas du JSON : {self.body[:80]!r}") from exc


class AgencyAnswer(BaseModel):
    """The agency's decision in our words. The runtime checks its coherence
    (`answer_problems`) and dead-letters an incoherent one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Decision
    summary: str
    agency_reference: str
    amount_eur: float | None = None
    start_date: dt.date | None = None
    reason: str | None = None
    requested_document: RequestedDocument | None = None


@dataclass(frozen=True)
class Acknowledged:
    """The agency took the request and will call back with its answer."""

    agency_reference: str


@dataclass(frozen=True)
class CallbackAnswer:
    """An answer the agency delivered to our callback endpoint."""

    callback_id: str  # the agency's id of this delivery: a second delivery has no effect
    request_id: str
    answer: AgencyAnswer


#: What an adapter without a status query says when asked for one.
NO_STATUS = "{agency} n'offre pas de consultation de l'état d'une demande"


@dataclass(frozen=True)
class PendingRequest:
    """A request the agency acknowledged and has not decided yet: what a status query needs."""

    request_id: str
    file_id: str
    agency_reference: str


def answer_problems(answer: AgencyAnswer) -> list[str]:
    """What makes an answer unusable for the citizen, in plain words."""
    problems = []
    if not answer.agency_reference.strip():
        problems.append("la réponse n'a pas de référence de l'organisme")
    if not answer.summary.strip():
        problems.append("la réponse n'a pas de résumé en français")
    if answer.decision is Decision.REFUSED and not (answer.reason or "").strip():
        problems.append("un refus doit donner son motif (reason)")
    if answer.decision is Decision.DOCUMENT_REQUESTED and answer.requested_document is None:
        problems.append("une demande de pièce doit nommer la pièce (requested_document)")
    if answer.decision is not Decision.DOCUMENT_REQUESTED and answer.requested_document is not None:
        problems.append("une pièce n'est demandée qu'avec la décision piece_demandee")
    if answer.amount_eur is not None and answer.amount_eur < 0:
        problems.append("un montant accordé ne peut pas être négatif")
    if answer.amount_eur is not None and answer.decision is not Decision.GRANTED:
        problems.append("un montant n'accompagne qu'une décision accordée")
    return problems


class AgencyAdapter(ABC):
    """Subclass this, set `declaration`, implement `build_call` and `read_answer` (plus
    `build_document_call` if the agency asks for documents; `read_callback`, and
    `build_status_call` + `read_status` for reconciliation, if it answers asynchronously).
    Register the class under the `guichet.adapters` entry point."""

    declaration: ClassVar[Declaration]
    #: The adapter's configuration schema (pydantic-settings, read from the environment).
    Config: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config

    @abstractmethod
    def build_call(self, request: CanonicalRequest) -> AgencyCall:
        """Our canonical request as the agency's own call."""

    @abstractmethod
    def read_answer(self, reply: AgencyReply) -> AgencyAnswer | Acknowledged:
        """The agency's reply in our words; raise AnswerInvalid if it cannot be read."""

    def build_document_call(self, document: SupportingDocument) -> AgencyCall:
        """A supporting document as the agency's own call (agencies that ask for documents)."""
        raise NotImplementedError(
            f"{self.declaration.agency} ne reçoit pas de pièces justificatives"
        )

    def read_callback(self, body: bytes, headers: Mapping[str, str]) -> CallbackAnswer:
        """An asynchronous answer delivered to our callback endpoint; raise AnswerInvalid if unreadable."""
        raise NotImplementedError(f"{self.declaration.agency} ne rappelle pas")

    def build_status_call(self, request: PendingRequest) -> AgencyCall:
        """Ask the agency where an acknowledged request stands (asynchronous agencies): the
        runtime polls it when no decision came back in time, so a lost callback is recovered."""
        raise NotImplementedError(NO_STATUS.format(agency=self.declaration.agency))

    def read_status(self, reply: AgencyReply) -> AgencyAnswer | None:
        """The agency's decision read from a status reply, or None while it is still under
        review; raise AnswerInvalid if the reply cannot be read."""
        raise NotImplementedError(NO_STATUS.format(agency=self.declaration.agency))


def offers_status(adapter: AgencyAdapter | type[AgencyAdapter]) -> bool:
    """Whether the adapter implements the status query reconciliation uses."""
    cls = adapter if isinstance(adapter, type) else type(adapter)
    return cls.build_status_call is not AgencyAdapter.build_status_call


__all__ = ["CITIZEN_FIELDS"]

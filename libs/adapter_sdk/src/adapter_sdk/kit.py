"""The contract test kit: one command an agency runs against its adapter and its own
sandbox, reporting every rule the adapter breaks in plain words.

    guichet-adapter-kit caf --sandbox http://127.0.0.1:8101

Rules checked: the declaration (procedures, citizen fields, legal-deadline rule, legal
basis); its agreement with the guichet's catalogue (shared_models.catalogue, or the file
GUICHET_CATALOGUE names): same code and label, every life event the catalogue sends to the
agency handled, the same citizen fields as the catalogue lists for it (the only ones the
core puts on the agency's request topic); the configuration schema; data minimisation (the
adapter reads only declared fields and uses every field it declares); a real exchange with
the sandbox for each declared procedure, whose answers must be coherent decisions or
acknowledgements; the callback of an asynchronous agency, received on a real socket, signed
with the shared CALLBACK_SECRET and refused by the adapter unsigned or replayed
(adapter_sdk.kit_callbacks), and its status query (reconciliation: the decision read back
from the agency's status endpoint); supporting documents; idempotency (the same request
twice is one request for the agency); and unreadable answers (garbage, wrong schema) refused
instead of passed on as decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from pydantic import ValidationError

from adapter_sdk import kit_callbacks
from adapter_sdk.config import AdapterConfig
from adapter_sdk.declaration import CITIZEN_FIELDS, catalogue_problems, declaration_problems
from adapter_sdk.interface import (
    Acknowledged,
    AgencyAdapter,
    AgencyAnswer,
    AnswerInvalid,
    CanonicalRequest,
    CitizenData,
    PendingRequest,
    SupportingDocument,
    UndeclaredField,
    answer_problems,
    offers_status,
)
from adapter_sdk.kit_garbage import garbage_problems
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.reconcile import read_status_checked
from adapter_sdk.translation import checked
from adapter_sdk.transport import AgencyFailed, AgencyRejected, AgencyUnavailable, Transport
from guichet_runtime.policy import Policy, declared
from shared_models import CatalogueInvalid, Decision, catalogue

#: Recognisable values of every citizen field, to see which ones an adapter sends.
SENTINELS: dict[str, str] = {
    "given_name": "Kitprenomzq",
    "family_name": "Kitnomzq",
    "email": "kit.courriel.zq@example.fr",
    "phone": "0699887766",
    "street": "12 rue du Kitzq",
    "postcode": "97351",
    "city": "Kitvillezq",
    "preferred_channel": "courrier",
    "description": "Situation decrite pour le kit zq",
}
#: Values that would be found by accident in a body (a key named "courrier"…).
_AMBIGUOUS = {"preferred_channel"}


#: A tiny valid PDF, as a supporting document.
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Check:
    rule: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    adapter: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def problems(self) -> list[str]:
        return [f"{c.rule} : {p}" for c in self.checks for p in c.problems]

    def render(self) -> str:
        lines = [f"Kit de conformité — adaptateur {self.adapter}"]
        for c in self.checks:
            if c.ok:
                lines.append(f"  OK     {c.rule}")
            else:
                lines.append(f"  ÉCHEC  {c.rule}")
                lines.extend(f"         - {p}" for p in c.problems)
        failed = sum(not c.ok for c in self.checks)
        lines.append(
            "Conforme : toutes les règles sont respectées."
            if not failed
            else f"Non conforme : {failed} règle(s) sur {len(self.checks)} non respectée(s)."
        )
        return "\n".join(lines)


class ListeningServer(uvicorn.Server):
    """A uvicorn server that says when it listens (uvicorn itself only sets a `started` flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()


class CallbackInbox:
    """A real HTTP endpoint on 127.0.0.1 where an asynchronous sandbox calls back."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        #: The first callback read for a request of the kit, as delivered (body, headers).
        self.matched: tuple[bytes, dict[str, str]] | None = None
        self.arrived = asyncio.Event()
        app = FastAPI()

        # The kit's stand-in for the platform's endpoint: takes every callback, to check it.
        @app.post("/callbacks", dependencies=[declared(Policy.AGENCY_CALLBACK)])
        async def callback(request: Request) -> dict[str, str]:
            self.received.append((await request.body(), dict(request.headers)))
            self.arrived.set()
            return {"statut": "recu"}

        self.server = ListeningServer(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CallbackInbox:
        self._task = asyncio.create_task(self.server.serve())
        listening = asyncio.create_task(self.server.listening.wait())
        # Listening, or the server gave up starting (its task ends: the error surfaces below).
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not self.server.started:
            listening.cancel()
            await self._task
            raise RuntimeError("le serveur de rappel n'a pas démarré")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/callbacks"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


def _request(
    adapter_cls: type[AgencyAdapter], life_event: str, callback_url: str | None
) -> CanonicalRequest:
    run = uuid.uuid4().hex[:8]
    return CanonicalRequest(
        request_id=f"KIT-{run}-{adapter_cls.declaration.agency}",
        file_id=f"GU-KIT-{run}",
        life_event=life_event,
        urgent=False,
        citizen=CitizenData(SENTINELS, adapter_cls.declaration.citizen_fields),
        callback_url=callback_url,
    )


def _check_declaration(adapter_cls: type[AgencyAdapter]) -> Check:
    check = Check("Déclaration (démarches, champs citoyen, délai légal, base légale)")
    decl = getattr(adapter_cls, "declaration", None)
    if decl is None:
        check.problems.append("l'adaptateur n'a pas d'attribut declaration")
    else:
        check.problems.extend(declaration_problems(decl))
    return check


def _check_catalogue(adapter_cls: type[AgencyAdapter]) -> Check:
    check = Check(
        "Accord avec le catalogue du guichet (code, libellé, événements de vie, champs citoyen)"
    )
    decl = getattr(adapter_cls, "declaration", None)
    if decl is None:
        check.problems.append("l'adaptateur n'a pas d'attribut declaration")
        return check
    try:
        check.problems.extend(catalogue_problems(decl, catalogue()))
    except CatalogueInvalid as exc:
        check.problems.append(str(exc))
    return check


def _check_config(
    adapter_cls: type[AgencyAdapter], sandbox: str
) -> tuple[Check, AdapterConfig | None]:
    check = Check("Schéma de configuration (pydantic-settings, variables d'environnement)")
    config_cls = getattr(adapter_cls, "Config", None)
    if not (isinstance(config_cls, type) and issubclass(config_cls, AdapterConfig)):
        check.problems.append("Config doit être une sous-classe de adapter_sdk.AdapterConfig")
        return check, None
    try:
        return check, config_cls(agency_base_url=sandbox, agency_timeout_seconds=10, attempts=1)
    except ValidationError as exc:
        check.problems.append(
            f"la configuration ne se construit pas depuis l'environnement : {exc}"
        )
        return check, None


def _check_minimisation(adapter: AgencyAdapter) -> Check:
    decl = adapter.declaration
    check = Check("Minimisation des données (seuls les champs déclarés sont lus, tous sont utiles)")
    for life_event in decl.life_events:
        request = _request(type(adapter), life_event, "http://127.0.0.1:9/callbacks")
        try:
            call = adapter.build_call(request)
        except UndeclaredField as exc:
            check.problems.append(
                f"build_call lit un champ non déclaré pour « {life_event} » : {exc}"
            )
            continue
        except Exception as exc:
            check.problems.append(
                f"build_call échoue pour « {life_event} » : {type(exc).__name__}: {exc}"
            )
            continue
        body = call.body.decode("utf-8", errors="replace") + json.dumps(dict(call.headers))
        for name in sorted(decl.citizen_fields):
            if SENTINELS.get(name) and SENTINELS[name] not in body and name not in _AMBIGUOUS:
                check.problems.append(
                    f"le champ déclaré « {name} » n'est jamais transmis (« {life_event} ») : "
                    f"retirez-le de citizen_fields, l'organisme n'en a pas besoin"
                )
        for name in sorted(set(CITIZEN_FIELDS) - decl.citizen_fields - _AMBIGUOUS):
            if SENTINELS[name] in body:
                check.problems.append(f"le champ non déclaré « {name} » part vers l'organisme")
        break  # fields are the same for every procedure
    return check


async def _exchange(
    transport: Transport, adapter: AgencyAdapter, call: Any
) -> AgencyAnswer | Acknowledged | str:
    try:
        reply = await transport.send(call)
    except (AgencyUnavailable, AgencyFailed, AgencyRejected) as exc:
        return f"le bac à sable n'a pas accepté l'appel : {exc}"
    try:
        return checked(adapter.read_answer, reply)
    except AnswerInvalid as exc:
        return f"la réponse du bac à sable n'a pas pu être lue : {exc}"


async def _check_sandbox(
    adapter: AgencyAdapter, transport: Transport, timeout: float
) -> list[Check]:
    decl = adapter.declaration
    exchange = Check("Échange réel avec le bac à sable pour chaque démarche déclarée")
    callback_check = Check("Rappel asynchrone reçu sur une vraie socket et lu")
    status_check = Check("Consultation de l'état d'une demande (réconciliation d'un rappel perdu)")
    if decl.asynchronous and not offers_status(adapter):
        status_check.problems.append(
            "l'organisme rappelle (asynchronous=True) mais build_status_call et read_status "
            "ne sont pas écrits : un rappel perdu ou refusé ne serait jamais rattrapé"
        )
    documents = Check("Pièces justificatives demandées, transmises, puis décision")
    idempotency = Check("Idempotence (la même demande deux fois n'en fait qu'une pour l'organisme)")
    async with CallbackInbox() as inbox:
        for life_event in decl.life_events:
            request = _request(type(adapter), life_event, inbox.url)
            try:
                call = adapter.build_call(request)
            except Exception as exc:
                exchange.problems.append(f"« {life_event} » : build_call échoue : {exc}")
                continue
            result = await _exchange(transport, adapter, call)
            if isinstance(result, str):
                exchange.problems.append(f"« {life_event} » : {result}")
                continue
            # A redelivery translates the request again: it must still be the same request.
            again = await _exchange(transport, adapter, adapter.build_call(request))
            if not isinstance(again, str) and again.agency_reference != result.agency_reference:
                idempotency.problems.append(
                    f"« {life_event} » : deux envois de la même demande ont reçu deux références "
                    f"({result.agency_reference}, {again.agency_reference}) : transmettez "
                    "request_id à l'organisme"
                )
            if isinstance(result, Acknowledged):
                if not decl.asynchronous:
                    exchange.problems.append(
                        f"« {life_event} » : l'organisme accuse réception sans décider, mais la"
                        " déclaration ne dit pas asynchronous=True"
                    )
                    continue
                answer = await _await_callback(adapter, inbox, request, timeout, callback_check)
                if answer is None:
                    continue
                if offers_status(adapter):
                    await _check_status(adapter, transport, request, result, answer, status_check)
            else:
                if decl.asynchronous:
                    callback_check.problems.append(
                        f"« {life_event} » : déclaré asynchrone, mais l'organisme a décidé tout"
                        " de suite"
                    )
                answer = result
            if answer.decision is Decision.DOCUMENT_REQUESTED:
                await _check_document(adapter, transport, request, answer, documents)
        door = Check(kit_callbacks.RULE)
        if decl.asynchronous and inbox.matched is not None:
            problem = kit_callbacks.signature_problem(adapter, *inbox.matched)
            door.problems.extend([problem] if problem else [])
            door.problems.extend(await kit_callbacks.door_problems(adapter, *inbox.matched))
    checks = [exchange, idempotency]
    if decl.asynchronous or callback_check.problems:
        checks.append(callback_check)
    if decl.asynchronous:
        checks.append(door)
    if decl.asynchronous or status_check.problems:
        checks.append(status_check)
    if decl.accepts_documents or documents.problems:
        checks.append(documents)
    return checks


async def _await_callback(
    adapter: AgencyAdapter,
    inbox: CallbackInbox,
    request: CanonicalRequest,
    timeout: float,
    check: Check,
) -> AgencyAnswer | None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for body, headers in inbox.received:
            try:
                callback = adapter.read_callback(body, headers)
            except Exception as exc:
                check.problems.append(f"read_callback ne lit pas le rappel de l'organisme : {exc}")
                inbox.received.remove((body, headers))
                return None
            if callback.request_id == request.request_id:
                inbox.matched = inbox.matched or (body, headers)
                problems = answer_problems(callback.answer)
                if problems:
                    check.problems.append("rappel incohérent : " + "; ".join(problems))
                    return None
                if not callback.callback_id:
                    check.problems.append(
                        "le rappel n'a pas d'identifiant (callback_id) : un doublon ne serait pas "
                        "reconnu"
                    )
                return callback.answer
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            check.problems.append(
                f"aucun rappel reçu en {timeout:.0f} s pour {request.request_id} : "
                f"l'adresse de rappel (callback_url) est-elle transmise à l'organisme ?"
            )
            return None
        inbox.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbox.arrived.wait(), remaining)


async def _check_status(
    adapter: AgencyAdapter,
    transport: Transport,
    request: CanonicalRequest,
    acknowledged: Acknowledged,
    called_back: AgencyAnswer,
    check: Check,
) -> None:
    """The decision the agency called back with is also what its status endpoint says."""
    pending = PendingRequest(request.request_id, request.file_id, acknowledged.agency_reference)
    try:
        call = adapter.build_status_call(pending)
    except Exception as exc:
        check.problems.append(f"build_status_call échoue : {type(exc).__name__}: {exc}")
        return
    try:
        reply = await transport.send(call)
    except (AgencyUnavailable, AgencyFailed, AgencyRejected) as exc:
        check.problems.append(f"le bac à sable n'a pas accepté la consultation de l'état : {exc}")
        return
    try:
        status = read_status_checked(adapter, reply)
    except AnswerInvalid as exc:
        check.problems.append(f"l'état de la demande n'a pas pu être lu : {exc}")
        return
    if status is None:
        check.problems.append(
            f"l'état de {request.request_id} ne donne pas la décision pourtant rappelée : "
            f"read_status doit la rendre"
        )
    elif status != called_back:
        check.problems.append(
            f"l'état de {request.request_id} ne donne pas la décision rappelée ({status.decision})"
        )


async def _check_document(
    adapter: AgencyAdapter,
    transport: Transport,
    request: CanonicalRequest,
    answer: AgencyAnswer,
    check: Check,
) -> None:
    decl = adapter.declaration
    if not decl.accepts_documents:
        check.problems.append(
            f"l'organisme demande une pièce (« {request.life_event} ») mais la déclaration "
            f"ne dit pas accepts_documents=True"
        )
        return
    assert answer.requested_document is not None
    document = SupportingDocument(
        request_id=request.request_id,
        agency_reference=answer.agency_reference,
        code=answer.requested_document.code,
        filename="piece.pdf",
        media_type="application/pdf",
        content=PDF,
    )
    try:
        call = adapter.build_document_call(document)
    except NotImplementedError:
        check.problems.append(
            "build_document_call n'est pas écrit alors que l'organisme demande des pièces"
        )
        return
    except Exception as exc:
        check.problems.append(f"build_document_call échoue : {exc}")
        return
    result = await _exchange(transport, adapter, call)
    if isinstance(result, str):
        check.problems.append(f"envoi de la pièce {document.code} : {result}")
    elif (
        isinstance(result, AgencyAnswer) and result.requested_document == answer.requested_document
    ):
        check.problems.append(f"après la pièce {document.code}, l'organisme la demande encore")


def _check_garbage(adapter: AgencyAdapter) -> Check:
    check = Check("Réponses illisibles ou hors schéma refusées (jamais transmises comme décision)")
    check.problems.extend(garbage_problems(adapter))
    return check


async def run_kit(
    adapter_cls: type[AgencyAdapter], sandbox: str, *, callback_timeout: float = 15
) -> Report:
    """Check `adapter_cls` against the agency's sandbox at `sandbox`."""
    decl = getattr(adapter_cls, "declaration", None)
    report = Report(getattr(decl, "agency", adapter_cls.__name__))
    report.checks.append(_check_declaration(adapter_cls))
    report.checks.append(_check_catalogue(adapter_cls))
    config_check, config = _check_config(adapter_cls, sandbox)
    report.checks.append(config_check)
    if decl is None or config is None:
        return report  # nothing further can be checked
    adapter = adapter_cls(config)
    report.checks.append(_check_minimisation(adapter))
    report.checks.append(_check_garbage(adapter))
    transport = Transport(config, decl.agency, AdapterMetrics())
    try:
        report.checks.extend(await _check_sandbox(adapter, transport, callback_timeout))
    finally:
        await transport.close()
    return report

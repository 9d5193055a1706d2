"""The adapter's one use case: transmit a request to the agency, publish its answer."""

from __future__ import annotations

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from guichet_runtime.consumer import PermanentError, TransientError
from guichet_runtime.db import UnitOfWork
from shared_models import AgencyAnswerReceived, AgencyRequestIssued, topics
from agency_adapter.plugins import AgencyAnswerInvalid, AgencyPlugin


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)


def make_handler(plugin: AgencyPlugin, client: httpx.AsyncClient, attempts: int = 5):
    async def on_request(event: AgencyRequestIssued, uow: UnitOfWork) -> None:
        if event.agency != plugin.agency:
            raise PermanentError(f"demande pour {event.agency} reçue par l'adaptateur {plugin.agency}")
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.1, max=5),
                retry=retry_if_exception(_worth_retrying),
                reraise=True,
            ):
                with attempt:
                    decision = await plugin.submit(client, event)
        except AgencyAnswerInvalid as exc:
            raise PermanentError(str(exc)) from exc
        except httpx.HTTPStatusError as exc:
            if _worth_retrying(exc):
                raise TransientError(f"{plugin.agency.value} indisponible ({exc.response.status_code})") from exc
            raise PermanentError(f"{plugin.agency.value} a refusé la demande ({exc.response.status_code})") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{plugin.agency.value} injoignable : {exc!r}") from exc
        async with uow:
            uow.emit(
                topics.agency_answers(plugin.agency),
                AgencyAnswerReceived(file_id=event.file_id, request_id=event.request_id, answer=decision),
            )
            await uow.commit()

    return on_request

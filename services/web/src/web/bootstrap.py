"""Composition root of the web service: server-rendered pages (DSFR) over the other
services' HTTP APIs. Every page works without JavaScript: plain forms, POST then redirect."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.datastructures import UploadFile
from starlette.middleware.sessions import SessionMiddleware

from guichet_runtime.service import TraceIdHeader
from guichet_runtime.telemetry import setup_tracing
from web import forms, pages
from web.backend import Backend, BackendError
from web.settings import WebSettings

log = logging.getLogger(__name__)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def flash(request: Request, message: str, kind: str = "success") -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def current_agent(request: Request) -> str | None:
    """TEMPORARY seam until agents sign in (a later issue brings real authentication):
    the `X-Guichet-Agent` header, else `?agent=` (remembered in the session), else the
    agent picked on /agent. Replace this one function with the authenticated identity."""
    agent = request.headers.get("x-guichet-agent") or request.query_params.get("agent")
    if agent:
        request.session["agent"] = agent
        return agent
    return request.session.get("agent")


def bootstrap(settings: WebSettings | None = None) -> FastAPI:
    settings = settings or WebSettings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tracer_provider = setup_tracing(settings.service_name, settings.otel_spans_file)
    backend = Backend(settings.intake_url, settings.assignment_url, settings.backend_timeout_seconds)
    render = pages.Renderer()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await backend.close()
            tracer_provider.shutdown()

    app = FastAPI(title="Guichet unique — pages", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ready = False
    dsfr = settings.assets_dir / "@gouvfr" / "dsfr" / "dist"
    if not dsfr.is_dir():
        raise RuntimeError(f"DSFR introuvable dans {dsfr} : lancez `make setup` (npm ci).")
    app.mount("/dsfr", StaticFiles(directory=dsfr), name="dsfr")
    app.mount("/static", StaticFiles(packages=[("web", "static")]), name="static")

    @app.get("/health", include_in_schema=False)
    async def health(response: Response) -> dict[str, str]:
        if not app.state.ready:
            response.status_code = 503
            return {"status": "starting"}
        return {"status": "ok", "service": settings.service_name}

    @app.exception_handler(BackendError)
    async def backend_down(request: Request, exc: BackendError) -> HTMLResponse:
        return render(request, "error.html", {"title": "Un problème est survenu", "message": exc.message},
                      status_code=exc.status if exc.status in (404, 409) else 503)

    @app.exception_handler(httpx.HTTPError)
    async def backend_unreachable(request: Request, exc: httpx.HTTPError) -> HTMLResponse:
        log.warning("backend unreachable: %r", exc)
        return render(request, "error.html", {
            "title": "Service momentanément indisponible",
            "message": "Nous ne pouvons pas afficher cette page pour le moment. Réessayez dans quelques minutes.",
        }, status_code=503)

    # -- citizens ---------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        return render(request, "home.html", {})

    async def life_events() -> list[dict]:
        return await backend.life_events()

    def file_form(request: Request, template: str, values: dict, errors: dict, events: list, key: str,
                  status: int = 200) -> HTMLResponse:
        options = [(e["code"], e["label"], "Organismes concernés : " + ", ".join(e["agencies"])) for e in events]
        return render(request, template, {"values": values, "errors": errors, "life_event_options": options,
                                          "idempotency_key": key}, status_code=status)

    async def submit(request: Request, template: str, on_success: str) -> Response:
        form = await request.form()
        values = forms.typed(form, forms.FILE_FIELDS)
        values["urgent"] = "oui" if form.get("urgent") else ""
        key = str(form.get("idempotency_key") or uuid.uuid4())
        try:
            created = await backend.submit_file(forms.file_body(values, bool(values["urgent"])), key)
        except BackendError as refused:
            if refused.status != 422:
                raise
            errors = forms.file_errors(refused.errors, values)
            return file_form(request, template, values, errors, await life_events(), key, status=422)
        except httpx.HTTPError as unreachable:
            # Keep what was typed; the same Idempotency-Key makes sending again safe.
            log.warning("intake unreachable: %r", unreachable)
            errors = {"form": "Le service est momentanément indisponible : la déclaration n'est pas encore "
                              "envoyée. Vos informations sont conservées ci-dessous ; réessayez dans un instant."}
            try:
                events = await life_events()
            except httpx.HTTPError:
                events = []
            return file_form(request, template, values, errors, events, key, status=503)
        return _redirect(on_success.format(file_id=created["file_id"]))

    @app.get("/demarche", response_class=HTMLResponse)
    async def new_file_form(request: Request) -> HTMLResponse:
        return file_form(request, "citizen_new.html", {}, {}, await life_events(), str(uuid.uuid4()))

    @app.post("/demarche")
    async def new_file(request: Request) -> Response:
        return await submit(request, "citizen_new.html", "/demarche/confirmation/{file_id}")

    @app.get("/demarche/confirmation/{file_id}", response_class=HTMLResponse)
    async def submitted(request: Request, file_id: str) -> HTMLResponse:
        return render(request, "citizen_submitted.html", {"file_id": file_id})

    @app.get("/suivi", response_class=HTMLResponse)
    async def follow_form(request: Request, dossier: str = "") -> HTMLResponse:
        return render(request, "citizen_access.html", {"values": {"reference": dossier}, "errors": {}})

    @app.post("/suivi")
    async def follow(request: Request) -> Response:
        form = await request.form()
        reference = forms.normalise_reference(str(form.get("reference", "")))
        error = forms.reference_error(reference)
        if error is None:
            try:
                await backend.request_access_code(reference)
            except BackendError as refused:
                if refused.status not in (404, 409, 422, 429):
                    raise
                error = refused.message
        if error:
            return render(request, "citizen_access.html",
                          {"values": {"reference": str(form.get("reference", ""))}, "errors": {"reference": error}},
                          status_code=422)
        flash(request, "Un code à 6 chiffres vient de vous être envoyé par courriel. Il est valable 15 minutes.")
        return _redirect(f"/suivi/code?dossier={reference}")

    @app.get("/suivi/code", response_class=HTMLResponse)
    async def code_form(request: Request, dossier: str = "") -> HTMLResponse:
        return render(request, "citizen_code.html", {"file_id": dossier, "values": {}, "errors": {}})

    @app.post("/suivi/code")
    async def code(request: Request) -> Response:
        form = await request.form()
        reference = forms.normalise_reference(str(form.get("reference", "")))
        typed_code = str(form.get("code", ""))
        error = forms.code_error(typed_code)
        if error is None and forms.reference_error(reference):
            return _redirect("/suivi")
        if error is None:
            try:
                await backend.verify_access_code(reference, typed_code)
            except BackendError as refused:
                if refused.status not in (403, 404, 422):
                    raise
                error = refused.errors[0]["message"] if refused.errors else refused.message
        if error:
            return render(request, "citizen_code.html",
                          {"file_id": reference, "values": {"code": typed_code}, "errors": {"code": error}},
                          status_code=422)
        opened = request.session.setdefault("files", {})
        opened[reference] = time.time() + settings.file_access_minutes * 60
        request.session["files"] = opened
        return _redirect(f"/dossier/{reference}")

    def may_open(request: Request, file_id: str) -> bool:
        return request.session.get("files", {}).get(file_id, 0) > time.time()

    async def referent_card(view: dict) -> dict | None:
        referent = view.get("referent")
        if not referent:
            return None
        card = {"name": referent["name"], "phone": referent["phone"], "email": referent["email"],
                "office": {"name": referent["office"]}}
        if referent.get("agent_id"):
            try:
                card = await backend.agent_card(referent["agent_id"])
            except BackendError:
                log.warning("agent card of %s unavailable; showing the file's copy", referent["agent_id"])
        return card

    async def show_file(request: Request, file_id: str, values: dict[str, str] | None = None,
                        errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
        """The citizen's file page; after a refused form, with the messages and what was typed."""
        view, record, contact = await asyncio.gather(
            backend.file_view(file_id), backend.assignment_record(file_id), backend.file_record(file_id),
            return_exceptions=True,
        )
        if isinstance(view, BaseException):
            raise view
        deadline = None if isinstance(record, BaseException) else record.get("deadline")
        if isinstance(contact, BaseException):
            log.warning("contact details of %s unavailable: %r", file_id, contact)
            on_record: dict[str, str] = {}
        else:
            on_record = forms.contact_values(contact["citizen"])
            on_record["phone"] = pages.phone_fr(on_record["phone"])
        return render(request, "citizen_file.html", {
            "file": view, "card": await referent_card(view), "deadline": deadline, "contact": on_record,
            "values": {**on_record, **(values or {})}, "errors": errors or {},
            "thanked": pages.thanked_current_referent(view["timeline"]),
            "surveyed": pages.survey_answered(view["timeline"]),
            "requested": pages.requested_documents(view["agencies"]),
            "document_hint": forms.document_hint(settings.document_max_bytes),
        }, status_code=status)

    @app.get("/dossier/{file_id}", response_class=HTMLResponse)
    async def citizen_file(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        return await show_file(request, file_id)

    async def act(request: Request, file_id: str, call: Callable[[], Awaitable[dict]], values: dict[str, str],
                  fields: tuple[str, ...]) -> Response:
        """Send one of the citizen's forms to intake: on success a message on the file page; a
        refusal comes back next to its field (the first one if intake names none), nothing lost."""
        try:
            done = await call()
        except BackendError as refused:
            if refused.status not in (409, 413, 415, 422):
                raise
            errors = (forms.file_errors(refused.errors, values, fields) if refused.errors
                      else {fields[0]: refused.message})
            return await show_file(request, file_id, values, errors, status=refused.status)
        flash(request, done["message"])
        return _redirect(f"/dossier/{file_id}")

    @app.post("/dossier/{file_id}/referent")
    async def change_referent(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        values = forms.typed(await request.form(), ("reason",))
        return await act(request, file_id, lambda: backend.request_referent_change(file_id, values["reason"]),
                         values, ("reason",))

    @app.post("/dossier/{file_id}/contact")
    async def change_contact(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        values = forms.typed(await request.form(), forms.CONTACT_FIELDS)
        return await act(request, file_id,
                         lambda: backend.change_contact_preferences(file_id, forms.contact_body(values)),
                         values, forms.CONTACT_FIELDS)

    @app.post("/dossier/{file_id}/pieces")
    async def upload(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        form = await request.form()
        values = forms.typed(form, ("agency",))
        document = form.get("document")
        content, name, kind = b"", "", "application/octet-stream"
        if isinstance(document, UploadFile):
            # One byte over the limit is enough for intake to refuse it with its own message.
            content = await document.read(settings.document_max_bytes + 1)
            name, kind = document.filename or "", document.content_type or kind
        error = forms.document_error(name, content)
        if error:
            return await show_file(request, file_id, values, {"document": error}, status=422)

        async def send() -> dict:
            try:
                return await backend.upload_document(file_id, name, content, kind, values["agency"] or None)
            except BackendError as refused:
                refused.errors = forms.document_errors(refused.errors, refused.status)
                raise

        return await act(request, file_id, send, values, ("document", "agency"))

    @app.post("/dossier/{file_id}/merci")
    async def thanks(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        values = forms.typed(await request.form(), ("message",))
        return await act(request, file_id, lambda: backend.send_thanks(file_id, values["message"]),
                         values, ("message",))

    @app.post("/dossier/{file_id}/enquete")
    async def survey(request: Request, file_id: str) -> Response:
        if not may_open(request, file_id):
            return _redirect(f"/suivi?dossier={file_id}")
        values = forms.typed(await request.form(), forms.SURVEY_FIELDS)
        return await act(request, file_id, lambda: backend.answer_survey(file_id, forms.survey_body(values)),
                         values, forms.SURVEY_FIELDS)

    @app.post("/deconnexion")
    async def sign_out(request: Request) -> Response:
        request.session.clear()
        return _redirect("/")

    # -- counter / phone intake ---------------------------------------------------------
    @app.get("/guichet", response_class=HTMLResponse)
    async def counter_form(request: Request) -> HTMLResponse:
        return file_form(request, "counter_new.html", {"preferred_channel": "courrier"}, {}, await life_events(),
                         str(uuid.uuid4()))

    @app.post("/guichet")
    async def counter_new(request: Request) -> Response:
        return await submit(request, "counter_new.html", "/guichet/recu/{file_id}")

    @app.get("/guichet/recu/{file_id}", response_class=HTMLResponse)
    async def receipt(request: Request, file_id: str) -> HTMLResponse:
        # The référent is named within moments: wait a little, so the receipt names them.
        deadline = time.monotonic() + settings.receipt_wait_seconds
        view = await backend.file_view(file_id)
        while not view.get("referent") and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            view = await backend.file_view(file_id)
        record = await backend.file_record(file_id)
        return render(request, "counter_receipt.html",
                      {"file": view, "record": record, "card": await referent_card(view)})

    # -- agents: référent desk and supervision ------------------------------------------
    @app.get("/agent", response_class=HTMLResponse)
    async def choose_agent(request: Request, suite: str = "/referent") -> HTMLResponse:
        directory = await backend.portfolios()
        return render(request, "agent_choose.html", {"agents": directory["agents"], "next": suite,
                                                     "errors": {}, "current": current_agent(request)})

    @app.post("/agent")
    async def chose_agent(request: Request) -> Response:
        form = await request.form()
        agent = str(form.get("agent", ""))
        next_url = str(form.get("next", "/referent"))
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/referent"
        directory = await backend.portfolios()
        if agent not in {a["agent_id"] for a in directory["agents"]}:
            return render(request, "agent_choose.html",
                          {"agents": directory["agents"], "next": next_url, "current": None,
                           "errors": {"agent": "Choisissez votre nom dans la liste."}}, status_code=422)
        request.session["agent"] = agent
        return _redirect(next_url)

    @app.get("/referent", response_class=HTMLResponse)
    async def desk(request: Request, agent: str | None = Depends(current_agent)) -> Response:
        if not agent:
            return _redirect("/agent?suite=/referent")
        portfolio, thanks = await asyncio.gather(backend.portfolio(agent), backend.agent_thanks(agent),
                                                 return_exceptions=True)
        if isinstance(portfolio, BaseException):
            raise portfolio
        if isinstance(thanks, BaseException):
            log.warning("thanks of %s unavailable: %r", agent, thanks)
            thanks = None
        return render(request, "referent_portfolio.html", {"portfolio": portfolio, "thanks": thanks})

    @app.get("/referent/dossiers/{file_id}", response_class=HTMLResponse)
    async def desk_file(request: Request, file_id: str, agent: str | None = Depends(current_agent)) -> Response:
        if not agent:
            return _redirect(f"/agent?suite=/referent/dossiers/{file_id}")
        view, record, assignment, sent = await asyncio.gather(
            backend.file_view(file_id), backend.file_record(file_id), backend.assignment_record(file_id),
            backend.messages_to_citizen(file_id),
        )
        values = request.session.pop("desk_values", {})
        values.setdefault("idempotency_key", str(uuid.uuid4()))
        return render(request, "referent_file.html", {
            "file": view, "record": record, "assignment": assignment, "agent": agent,
            "messages": sent, "values": values, "errors": request.session.pop("desk_errors", {}),
        })

    async def desk_action(request: Request, file_id: str, field: str, anchor: str, action: Any,
                          kept: dict[str, str]) -> Response:
        """Run a desk action; on refusal the French message goes next to `field` and what
        was typed comes back (through the session, as the page is redirected to)."""
        try:
            done = await action()
        except BackendError as refused:
            if refused.status not in (403, 404, 409, 422):
                raise
            message = refused.errors[0]["message"] if refused.errors else refused.message
            request.session["desk_values"], request.session["desk_errors"] = kept, {field: message}
            return _redirect(f"/referent/dossiers/{file_id}#{anchor}")
        except httpx.HTTPError as unreachable:
            log.warning("backend unreachable from the desk: %r", unreachable)
            request.session["desk_values"] = kept
            request.session["desk_errors"] = {field: "Le service est momentanément indisponible : rien n'est "
                                                     "encore envoyé. Votre texte est conservé ; réessayez dans un instant."}
            return _redirect(f"/referent/dossiers/{file_id}#{anchor}")
        flash(request, done["message"])
        return _redirect(f"/referent/dossiers/{file_id}#{anchor}")

    @app.post("/referent/dossiers/{file_id}/mot")
    async def personal_word(request: Request, file_id: str, agent: str | None = Depends(current_agent)) -> Response:
        if not agent:
            return _redirect(f"/agent?suite=/referent/dossiers/{file_id}")
        text = str((await request.form()).get("personal_word", ""))
        return await desk_action(request, file_id, "personal_word", "mot-personnel",
                                 lambda: backend.add_personal_word(file_id, agent, text), {"personal_word": text})

    @app.post("/referent/dossiers/{file_id}/messages")
    async def message_to_citizen(request: Request, file_id: str, agent: str | None = Depends(current_agent)) -> Response:
        if not agent:
            return _redirect(f"/agent?suite=/referent/dossiers/{file_id}")
        form = await request.form()
        text, key = str(form.get("message", "")), str(form.get("idempotency_key") or uuid.uuid4())

        async def send() -> dict:
            await backend.send_message_to_citizen(file_id, agent, text, key)
            return {"message": "Votre message est envoyé à l'usager par son moyen de contact préféré."}

        # The key is kept with the text: sending again after a failure cannot send twice.
        return await desk_action(request, file_id, "message", "messages", send, {"message": text, "idempotency_key": key})

    @app.get("/supervision", response_class=HTMLResponse)
    async def supervision(request: Request) -> HTMLResponse:
        waiting, balance, at_risk, indicators = await asyncio.gather(
            backend.waiting_files(), backend.portfolios(), backend.deadlines_at_risk(settings.deadline_risk_days),
            backend.indicators(),
        )
        return render(request, "supervision.html", {
            "waiting": waiting, "balance": balance, "at_risk": at_risk,
            "chart": pages.load_chart(balance["agents"]), "indicators": indicators,
            "answer_chart": pages.indicator_chart(indicators["offices"], "answer_median_days", "j"),
            "deadline_chart": pages.indicator_chart(indicators["agencies"], "deadline_share", "%", maximum=1.0),
        })

    @app.get("/indicateurs.csv")
    async def indicators_csv() -> Response:
        """The open-data CSV of the indicators, as intake publishes it."""
        found = await backend.indicators_csv()
        return Response(found.content, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": found.headers["content-disposition"]})

    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="guichet_session",
                       same_site="lax", https_only=settings.secure_cookies,
                       max_age=settings.file_access_minutes * 60 * 4)
    app.add_middleware(TraceIdHeader)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, excluded_urls="health,dsfr,static")
    return app

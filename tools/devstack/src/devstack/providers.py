"""Simulated channel providers on a real socket: an SMS gateway and a postal service that
prints and posts PDF letters, for development and tests.

Run it::

    python -m devstack.providers --port 8027 --data-dir var/providers

Like real providers, both honour an ``Idempotency-Key`` header: a request repeating a key
already accepted is not delivered again; it answers 200 with the first answer and
``Idempotent-Replayed: true``. What was received is kept on disk (so a restart keeps both
the messages and the keys) and served over HTTP:

* ``POST /api/sms`` ``{"to", "text", "sender"}`` -> 201 ``{"id", "status": "accepte"}``
* ``GET /api/sms`` -> every SMS received, oldest first (``id, key, to, text, sender, file_id, traceparent, at``)
* ``POST /api/letters`` (body: ``application/pdf``) -> 201 ``{"id", "status": "deposee", "pages"}``
* ``GET /api/letters`` -> every letter's metadata; ``GET /api/letters/<id>.pdf`` -> the PDF
* ``GET /stats`` -> ``{"sms": n, "letters": n, "replayed": n, "refused": n}``
* ``POST /admin/faults`` -> fault injection, any of:
  ``{"refuse_numbers": ["+33…"], "code": "numero_invalide"}`` (400, permanent),
  ``{"sms_unavailable": n}`` / ``{"letters_unavailable": n}`` (the next n requests get 503),
  ``{"reset": true}``.
* ``DELETE /api/sms``, ``DELETE /api/letters`` empty the stores; ``GET /health``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("devstack.providers")

_PHONE = re.compile(r"^(?:\+33|0)[1-9]\d{8}$")


def _normalise(number: str) -> str:
    compact = re.sub(r"[\s.\-]", "", number)
    return "+33" + compact[1:] if compact.startswith("0") else compact


class Store:
    """One kind of item (SMS or letters) in a directory: `<hash of key>.json` per item,
    created exclusively, so a key is accepted once even across threads and restarts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = len(list(folder.glob("*.json")))

    def path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def accept(
        self, key: str, record: dict[str, Any], blob: bytes | None = None
    ) -> tuple[dict[str, Any], bool]:
        """(stored record, replayed?)."""
        path = self.path(key)
        with self._lock:
            if path.exists():
                return json.loads(path.read_text(encoding="utf-8")), True
            self._seq += 1
            record = {**record, "seq": self._seq}
            if blob is not None:
                (self.folder / f"{record['id']}.pdf").write_bytes(blob)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)  # atomic: a crash leaves no half-written record
            return record, False

    def all(self) -> list[dict[str, Any]]:
        items = [json.loads(p.read_text(encoding="utf-8")) for p in self.folder.glob("*.json")]
        return sorted(items, key=lambda r: r["seq"])

    def clear(self) -> int:
        with self._lock:
            paths = list(self.folder.glob("*"))
            for p in paths:
                p.unlink(missing_ok=True)
            self._seq = 0
            return sum(1 for p in paths if p.suffix == ".json")


class Providers:
    def __init__(self, data_dir: Path) -> None:
        self.sms = Store(data_dir / "sms")
        self.letters = Store(data_dir / "letters")
        self.lock = threading.Lock()
        self.refused_numbers: set[str] = set()
        self.refusal_code = "numero_invalide"
        self.unavailable = {"sms": 0, "letters": 0}
        self.counts = {"replayed": 0, "refused": 0}

    def take_outage(self, kind: str) -> bool:
        with self.lock:
            if self.unavailable[kind] > 0:
                self.unavailable[kind] -= 1
                return True
            return False


def _make_handler(p: Providers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "devstack-providers"
        protocol_version = "HTTP/1.1"  # keep-alive, as clients of real gateways do
        # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK hold the body back ~40 ms per request.
        disable_nagle_algorithm = True

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, permanent: bool) -> None:
            self._json(
                status, {"error": {"code": code, "message": message, "permanent": permanent}}
            )

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _common(self, key: str) -> dict[str, Any]:
            return {
                "id": uuid.uuid4().hex[:16],
                "key": key,
                "file_id": self.headers.get("X-Guichet-File"),
                "traceparent": self.headers.get("traceparent"),
                "at": datetime.now(UTC).isoformat(),
            }

        def _accepted(self, record: dict[str, Any], replayed: bool, status: str) -> None:
            if replayed:
                with p.lock:
                    p.counts["replayed"] += 1
            answer = {"id": record["id"], "status": status}
            self._json(
                200 if replayed else 201,
                answer,
                {"Idempotent-Replayed": "true"} if replayed else None,
            )

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            raw = self._body()
            if path == "/admin/faults":
                self._faults(json.loads(raw or b"{}"))
                return
            key = self.headers.get("Idempotency-Key")
            if path not in ("/api/sms", "/api/letters"):
                self._json(404, {"detail": "not found"})
                return
            if not key:
                self._error(
                    400, "cle_idempotence_manquante", "En-tête Idempotency-Key obligatoire.", True
                )
                return
            if path == "/api/sms":
                self._sms(key, raw)
            else:
                self._letter(key, raw)

        def _sms(self, key: str, raw: bytes) -> None:
            if p.take_outage("sms"):
                self._error(
                    503, "indisponible", "Passerelle SMS momentanément indisponible.", False
                )
                return
            try:
                body = json.loads(raw)
                to, text = _normalise(str(body["to"])), str(body["text"])
            except (ValueError, KeyError):
                self._error(400, "requete_invalide", "Corps JSON attendu : to, text.", True)
                return
            if not _PHONE.match(to) or to in p.refused_numbers:
                with p.lock:
                    p.counts["refused"] += 1
                self._error(400, p.refusal_code, f"Numéro non joignable par SMS : {to}.", True)
                return
            record = {**self._common(key), "to": to, "text": text, "sender": body.get("sender")}
            self._accepted(*p.sms.accept(key, record), "accepte")

        def _letter(self, key: str, raw: bytes) -> None:
            if p.take_outage("letters"):
                self._error(
                    503, "indisponible", "Service postal momentanément indisponible.", False
                )
                return
            if not raw.startswith(b"%PDF-"):
                self._error(400, "pdf_invalide", "Le courrier doit être un document PDF.", True)
                return
            record = {**self._common(key), "bytes": len(raw)}
            self._accepted(*p.letters.accept(key, record, raw), "deposee")

        def _faults(self, body: dict[str, Any]) -> None:
            with p.lock:
                if body.get("reset"):
                    p.refused_numbers.clear()
                    p.unavailable = {"sms": 0, "letters": 0}
                if "refuse_numbers" in body:
                    p.refused_numbers = {_normalise(n) for n in body["refuse_numbers"]}
                    p.refusal_code = body.get("code", "numero_invalide")
                for kind in ("sms", "letters"):
                    if f"{kind}_unavailable" in body:
                        p.unavailable[kind] = int(body[f"{kind}_unavailable"])
                state = {
                    "refuse_numbers": sorted(p.refused_numbers),
                    **{f"{k}_unavailable": v for k, v in p.unavailable.items()},
                }
            self._json(200, state)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._json(200, {"status": "ok"})
            elif path == "/api/sms":
                self._json(200, p.sms.all())
            elif path == "/api/letters":
                self._json(200, p.letters.all())
            elif path == "/stats":
                with p.lock:
                    counts = dict(p.counts)
                self._json(
                    200, {"sms": len(p.sms.all()), "letters": len(p.letters.all()), **counts}
                )
            elif (m := re.fullmatch(r"/api/letters/([0-9a-f]{16})\.pdf", path)) and (
                p.letters.folder / f"{m[1]}.pdf"
            ).exists():
                data = (p.letters.folder / f"{m[1]}.pdf").read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self._json(404, {"detail": "not found"})

        def do_DELETE(self) -> None:
            path = self.path.split("?", 1)[0]
            store = {"/api/sms": p.sms, "/api/letters": p.letters}.get(path)
            if store is None:
                self._json(404, {"detail": "not found"})
                return
            self._json(200, {"deleted": store.clear()})

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s - %s", self.address_string(), format % args)

    return Handler


def make_server(host: str, port: int, data_dir: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _make_handler(Providers(data_dir)))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.providers", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8027)
    parser.add_argument(
        "--data-dir", required=True, help="where SMS and letters are kept (created if missing)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    server = make_server(args.host, args.port, Path(args.data_dir))

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("providers listening on %s:%d, data in %s", args.host, args.port, args.data_dir)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()

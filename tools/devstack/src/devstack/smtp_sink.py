"""A real SMTP server that keeps every message it receives, for development and tests.

Run it::

    python -m devstack.smtp_sink --host 127.0.0.1 --port 8025 --maildir var/maildir \\
        [--http-port 8026]

Every accepted message is stored, byte for byte (line endings normalised to ``\\n``),
in a :class:`mailbox.Maildir` at ``--maildir``, with three envelope headers prepended:
``X-Peer`` (client address), ``X-MailFrom`` (envelope sender) and ``X-RcptTo``
(envelope recipients, comma separated; this is the only place Bcc recipients show).

With ``--http-port`` a small HTTP server (stdlib, in a thread) also answers:

* ``GET /health``    -> ``{"status": "ok"}``
* ``GET /messages``  -> JSON list, oldest first, of :func:`message_to_json` objects
* ``DELETE /messages`` -> empties the Maildir (and forgets the ids), answers ``{"deleted": N}``
* ``GET /stats``     -> ``{"stored": N, "duplicates": N, "refused": N, "failed": N}``
* ``GET /failures``  -> JSON list of the messages the sink could not store (``error``,
  ``message_id``, ``envelope_to``), oldest first
* ``GET /duplicates`` -> JSON list, one item per ``Message-ID`` stored more than once: the
  first copy as :func:`message_to_json` plus ``copies`` (how many are stored)

Bounces: ``--refuse`` (repeatable; an address, or ``@domain`` for a whole domain) makes
the server answer ``550`` at ``RCPT TO`` for those recipients, as a real server does for an
unknown mailbox, so the client sees a real refusal (aiosmtplib raises
``SMTPRecipientsRefused``).

Like a real relay, the sink delivers every message it accepts, repeats included: a message
repeating a ``Message-ID`` already stored is stored again (a citizen would receive it twice)
and counted in ``duplicates`` (how many stored messages repeat an id stored before them; the
count survives a restart, as it is rebuilt from the Maildir). Tests that look for a message
sent twice thus see it, in :func:`read_maildir` and in ``/stats``.

The sink never loses a message silently: one it cannot store (a full disk, a Maildir
removed) is answered ``451`` (a temporary failure: the sender keeps the message and tries
again), logged as an error and counted in ``failed`` (listed in ``/failures``), so a test sees
it in what it reads. A sink that cannot start (a port taken) exits with an error.

Tests read what was sent with :func:`read_maildir`. The process stops cleanly on SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import functools
import itertools
import json
import logging
import mailbox
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("devstack.smtp_sink")

# Maildir keys look like "1732451234.M123456P789Q3.host": sort on (seconds, micro, pid, counter).
_KEY_RE = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)")


#: How often the HTTP server's loop looks whether it is asked to stop.
SHUTDOWN_POLL_SECONDS = 0.05


def _key_order(key: str) -> tuple[Any, ...]:
    match = _KEY_RE.match(key)
    if match is None:
        return (float("inf"), key)
    return (*(int(g) for g in match.groups()), key)


def _open_maildir(path: str | os.PathLike[str], create: bool) -> mailbox.Maildir | None:
    path = Path(path)
    if not create and not (path / "new").is_dir() and not (path / "cur").is_dir():
        return None
    return mailbox.Maildir(path, factory=None, create=create)


def _sorted_keys(box: mailbox.Maildir) -> list[str]:
    return sorted(box.keys(), key=_key_order)


#: Messages already parsed, by Maildir and key: a stored message never changes, and a test
#: reading a long-lived sink's Maildir again and again parses only what arrived since.
_parsed: dict[tuple[str, str], EmailMessage] = {}


def read_maildir(path: str | os.PathLike[str]) -> list[EmailMessage]:
    """Every message in the Maildir at ``path``, oldest first, parsed with
    :data:`email.policy.default`. A missing Maildir reads as empty."""
    box = _open_maildir(path, create=False)
    if box is None:
        return []
    parser = BytesParser(policy=email.policy.default)
    messages: list[EmailMessage] = []
    where = str(Path(path).resolve())
    for key in _sorted_keys(box):
        known = _parsed.get((where, key))
        if known is None:
            try:
                raw = box.get_bytes(key)
            except KeyError:  # removed meanwhile (e.g. DELETE /messages)
                continue
            known = _parsed[(where, key)] = parser.parsebytes(raw)  # type: ignore[assignment]
        messages.append(known)
    return messages


def _body_text(msg: EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return part.get_content()
    except (LookupError, UnicodeError):  # unknown charset or broken encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


def message_to_json(msg: EmailMessage) -> dict[str, Any]:
    """The JSON shape served by ``GET /messages``.

    Keys: ``from``, ``to``, ``cc``, ``subject``, ``message_id``, ``date`` (header values,
    RFC 2047 decoded, or null), ``envelope_from`` and ``envelope_to`` (from the sink's
    X-MailFrom / X-RcptTo headers), ``headers`` (every header as a ``[name, value]`` pair,
    in order, duplicates kept), ``text`` (text/plain body or null), ``html`` (text/html
    body or null).
    """

    def header(name: str) -> str | None:
        value = msg.get(name)
        return None if value is None else str(value)

    rcpt = header("X-RcptTo")
    return {
        "from": header("From"),
        "to": header("To"),
        "cc": header("Cc"),
        "subject": header("Subject"),
        "message_id": header("Message-ID"),
        "date": header("Date"),
        "envelope_from": header("X-MailFrom"),
        "envelope_to": [a.strip() for a in rcpt.split(",") if a.strip()] if rcpt else [],
        "headers": [[name, str(value)] for name, value in msg.items()],
        "text": _body_text(msg, "plain"),
        "html": _body_text(msg, "html"),
    }


def duplicates(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every Message-ID stored more than once in the Maildir at ``path``, in the order of
    their first copy: that copy as :func:`message_to_json`, plus ``copies``."""
    first: dict[str, EmailMessage] = {}
    copies: Counter[str] = Counter()
    for msg in read_maildir(path):
        mid = msg.get("Message-ID")
        if mid is None:
            continue
        mid = str(mid).strip()
        first.setdefault(mid, msg)
        copies[mid] += 1
    return [
        {**message_to_json(msg), "copies": copies[mid]}
        for mid, msg in first.items()
        if copies[mid] > 1
    ]


#: The end of a message's header block, and its Message-ID header (with folded lines).
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _message_id(raw: bytes) -> str | None:
    """The Message-ID of a message as it was sent, unfolded. Read from the header block as
    text: parsing the headers into the email package's header objects (200 µs a message) was
    the largest part of the sink's own work per email."""
    head = _HEADER_END.split(raw, maxsplit=1)[0]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    value = re.sub(rb"\r?\n", b"", match.group(1)).strip()
    return value.decode("utf-8", "replace") or None


@functools.cache
def _host() -> str:
    """This machine's name as `mailbox.Maildir` writes it in a file name."""
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


_DELIVERIES = itertools.count(1)


def deliver(maildir: Path, data: bytes) -> str:
    """Store `data` in the Maildir as a new message; returns its key. Written into `tmp/`
    then renamed into `new/`, as the Maildir convention (and `mailbox.Maildir.add`) does, so
    a reader never sees half a message; its name as `mailbox.Maildir` makes them (seconds,
    microseconds, process, a counter: what `_key_order` sorts on; then the host). Not
    `mailbox.Maildir.add` itself: it forces every message to the disk (fsync) and opens its
    file twice, a fifth of the sink's time per email, most of it waiting for the disk. A
    process killed after the rename loses nothing (the page cache holds it); only a machine
    losing power could, which no test is about."""
    now = time.time()
    name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_DELIVERIES)}.{_host()}"
    temporary = maildir / "tmp" / name
    with open(temporary, "xb") as file:  # O_EXCL: never another message's file
        try:
            file.write(data)
            file.close()  # written out before it is renamed
            os.rename(temporary, maildir / "new" / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return name


class MaildirHandler:
    """aiosmtpd handler writing each message into a Maildir."""

    def __init__(self, maildir: str | os.PathLike[str], refuse: list[str] | None = None) -> None:
        self.path = Path(maildir)
        self.maildir = mailbox.Maildir(self.path, factory=None, create=True)
        self._lock = threading.Lock()
        self.refuse = {r.lower() for r in refuse or []}
        self.stats = {"stored": 0, "duplicates": 0, "refused": 0, "failed": 0}
        #: The messages it could not store, oldest first (see ``GET /failures``).
        self.failures: list[dict[str, Any]] = []
        #: Copies stored per Message-ID (rebuilt from the Maildir: it survives a restart).
        self.copies: Counter[str] = Counter()
        for key in self.maildir.iterkeys():
            try:
                mid = _message_id(self.maildir.get_bytes(key))
            except KeyError:
                continue
            if mid:
                self.copies[mid] += 1
        self.stats["duplicates"] = self.repeats()

    def repeats(self) -> int:
        """How many stored messages repeat a Message-ID stored before them."""
        return sum(n - 1 for n in self.copies.values())

    def forget(self) -> None:
        """The Maildir was emptied: no id is stored any more."""
        with self._lock:
            self.copies.clear()
            self.stats["duplicates"] = 0

    def refuses(self, address: str) -> bool:
        address = address.lower()
        return address in self.refuse or ("@" + address.rsplit("@", 1)[-1]) in self.refuse

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refuses(address):
            self.stats["refused"] += 1
            return f"550 5.1.1 <{address}>: adresse inconnue, boîte aux lettres introuvable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):  # only with decode_data=True, which we do not use
            content = content.encode("utf-8", "surrogateescape")
        mid = _message_id(content)
        peer = session.peer
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        prefix = (
            f"X-Peer: {peer_text}\n"
            f"X-MailFrom: {envelope.mail_from or ''}\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\n"
        ).encode()
        data = prefix + content.replace(b"\r\n", b"\n")
        with self._lock:
            try:
                key = deliver(self.path, data)
            except OSError as exc:
                self.stats["failed"] += 1
                self.failures.append(
                    {"error": repr(exc), "message_id": mid, "envelope_to": envelope.rcpt_tos}
                )
                log.error("message %s to %s NOT stored: %r", mid, envelope.rcpt_tos, exc)
                return "451 4.3.0 Message not stored (sink error), try again later"
            self.stats["stored"] += 1
            if mid is not None:
                self.copies[mid] += 1
                if self.copies[mid] > 1:
                    self.stats["duplicates"] += 1
                    log.warning("message %s stored again (copy %d)", mid, self.copies[mid])
        log.info("stored message %s from %s to %s", key, envelope.mail_from, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


def _make_http_handler(
    maildir: Path, handler: MaildirHandler | None = None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "devstack-smtp-sink"

        def _send_json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send_json(200, {"status": "ok"})
            elif path == "/messages":
                self._send_json(200, [message_to_json(m) for m in read_maildir(maildir)])
            elif path == "/stats" and handler is not None:
                self._send_json(200, dict(handler.stats))
            elif path == "/failures" and handler is not None:
                self._send_json(200, list(handler.failures))
            elif path == "/duplicates" and handler is not None and not handler.repeats():
                self._send_json(200, [])  # no id stored twice: no need to parse the Maildir
            elif path == "/duplicates":
                self._send_json(200, duplicates(maildir))
            else:
                self._send_json(404, {"detail": "not found"})

        def do_DELETE(self) -> None:
            if self.path.split("?", 1)[0] != "/messages":
                self._send_json(404, {"detail": "not found"})
                return
            box = _open_maildir(maildir, create=False)
            deleted = 0
            if box is not None:
                for key in list(box.iterkeys()):  # a snapshot: the loop removes them
                    try:
                        box.remove(key)
                        deleted += 1
                    except KeyError:
                        pass
            if handler is not None:
                handler.forget()
            self._send_json(200, {"deleted": deleted})

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s - %s", self.address_string(), format % args)

    return Handler


async def serve(
    host: str,
    port: int,
    maildir: str | os.PathLike[str],
    http_port: int | None = None,
    stop: asyncio.Event | None = None,
    refuse: list[str] | None = None,
) -> None:
    """Run the SMTP server (and the HTTP server if ``http_port``) until ``stop`` is set."""
    stop = stop or asyncio.Event()
    handler = MaildirHandler(maildir, refuse)
    loop = asyncio.get_running_loop()
    smtp_server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink", enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
    http_server: ThreadingHTTPServer | None = None
    http_thread: threading.Thread | None = None
    if http_port is not None:
        http_server = ThreadingHTTPServer(
            (host, http_port), _make_http_handler(Path(maildir), handler)
        )
        http_server.daemon_threads = True
        http_thread = threading.Thread(
            target=http_server.serve_forever,
            # shutdown() waits for the loop's next look (0.5 s by default) at every stop.
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="smtp-sink-http",
            daemon=True,
        )
        http_thread.start()
    log.info(
        "smtp sink listening on %s:%d, maildir %s%s",
        host,
        port,
        maildir,
        f", http on {host}:{http_port}" if http_port is not None else "",
    )
    try:
        await stop.wait()
    finally:
        log.info("smtp sink stopping")
        smtp_server.close()
        await smtp_server.wait_closed()
        if http_server is not None:
            http_server.shutdown()
            http_server.server_close()
        if http_thread is not None:
            http_thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.smtp_sink",
        description="SMTP server storing every received message in a Maildir.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="SMTP port (default 8025)")
    parser.add_argument("--maildir", required=True, help="Maildir directory (created if missing)")
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="also serve GET /messages and GET /health on this port (same host)",
    )
    parser.add_argument(
        "--refuse",
        action="append",
        default=[],
        help="answer 550 to this recipient (an address, or @domain); repeatable",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        # aiosmtpd logs every SMTP command at INFO; keep that for --log-level DEBUG.
        logging.getLogger("mail.log").setLevel(logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(args.host, args.port, args.maildir, args.http_port, stop, args.refuse)

    asyncio.run(run())


if __name__ == "__main__":
    main()

"""Tests of the SMTP sink as a real process: SMTP in over a socket, Maildir and HTTP out."""

from __future__ import annotations

import json
import mailbox
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

from devstack import smtp_sink
from devstack.ports import free_ports
from devstack.smtp_sink import deliver, read_maildir
from tests.unit.channel_doubles import Sink as InProcessSink

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Sink:
    proc: subprocess.Popen[bytes]
    smtp_port: int
    http_port: int
    maildir: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("application/json")
            return json.loads(r.read())


def start_sink(maildir: Path, *extra: str) -> Sink:
    smtp_port, http_port = free_ports(2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.smtp_sink",
            "--host",
            "127.0.0.1",
            "--port",
            str(smtp_port),
            "--maildir",
            str(maildir),
            "--http-port",
            str(http_port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    sink = Sink(proc, smtp_port, http_port, maildir)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"smtp sink exited early ({proc.returncode}): {out}")
        try:
            if sink.get("/health") == {"status": "ok"}:
                with socket.create_connection(("127.0.0.1", smtp_port), timeout=1):
                    return sink
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("smtp sink did not start in 20 s")
        time.sleep(0.1)


def stop_sink(sink: Sink) -> None:
    if sink.proc.poll() is None:
        sink.proc.send_signal(signal.SIGTERM)
        try:
            sink.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sink.proc.kill()
            sink.proc.wait()


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sink]:
    s = start_sink(tmp_path_factory.mktemp("sink") / "maildir")
    try:
        yield s
    finally:
        stop_sink(s)


def referent_mail(subject: str = "Votre dossier a été confié à votre référente") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Guichet unique <ne-pas-repondre@guichet.example.fr>"
    msg["To"] = "Camille Martin <camille.martin@example.org>"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex, domain="guichet.example.fr")
    msg["Date"] = format_datetime(datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    msg["traceparent"] = TRACEPARENT
    msg["X-Guichet-File-Id"] = "DOS-2026-0001"
    msg.set_content(
        "Bonjour Camille Martin,\n\n"
        "Votre dossier DOS-2026-0001 est suivi par Mme Durand, votre référente.\n"
    )
    return msg


def send(sink: Sink, msg: EmailMessage, rcpt: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", sink.smtp_port, timeout=10) as smtp:
        refused = smtp.send_message(msg, to_addrs=rcpt)
    assert refused == {}


def by_message_id(messages: list[Any], message_id: str, key: Any) -> Any:
    found = [m for m in messages if key(m) == message_id]
    assert len(found) == 1, f"expected one message {message_id}, got {len(found)}"
    return found[0]


def test_message_is_stored_in_maildir_with_all_headers(sink: Sink) -> None:
    msg = referent_mail()
    send(sink, msg, rcpt=["camille.martin@example.org", "archives@guichet.example.fr"])

    stored = by_message_id(read_maildir(sink.maildir), msg["Message-ID"], lambda m: m["Message-ID"])
    assert stored["traceparent"] == TRACEPARENT
    assert stored["X-Guichet-File-Id"] == "DOS-2026-0001"
    assert stored["Subject"] == "Votre dossier a été confié à votre référente"
    assert stored["From"] == msg["From"]
    assert stored["To"] == msg["To"]
    assert stored["Date"] == msg["Date"]
    # every header the client sent is there, in order, after the sink's envelope headers
    sent_names = [name for name, _ in msg.items()]
    stored_names = [name for name, _ in stored.items()]
    assert stored_names[:3] == ["X-Peer", "X-MailFrom", "X-RcptTo"]
    assert stored_names[3:] == sent_names
    assert stored["X-RcptTo"] == "camille.martin@example.org, archives@guichet.example.fr"
    assert stored.get_body(("plain",)).get_content() == msg.get_content()
    # the file really is in the Maildir's new/ folder
    assert len(list((sink.maildir / "new").iterdir())) >= 1


def test_http_messages_endpoint_serves_the_same_message(sink: Sink) -> None:
    msg = referent_mail(subject="Prime à la naissance accordée")
    send(sink, msg, rcpt=["camille.martin@example.org", "copie-cachee@guichet.example.fr"])

    item = by_message_id(sink.get("/messages"), msg["Message-ID"], lambda m: m["message_id"])
    assert item["from"] == "Guichet unique <ne-pas-repondre@guichet.example.fr>"
    assert item["to"] == "Camille Martin <camille.martin@example.org>"
    assert item["subject"] == "Prime à la naissance accordée"
    assert item["date"] == msg["Date"]
    assert item["envelope_from"] == "ne-pas-repondre@guichet.example.fr"
    assert item["envelope_to"] == ["camille.martin@example.org", "copie-cachee@guichet.example.fr"]
    assert ["traceparent", TRACEPARENT] in item["headers"]
    assert ["X-Guichet-File-Id", "DOS-2026-0001"] in item["headers"]
    assert "Mme Durand, votre référente" in item["text"]
    assert item["html"] is None


def test_messages_are_read_back_in_arrival_order(sink: Sink) -> None:
    tag = uuid.uuid4().hex[:8]
    subjects = [f"ordre {tag} {i}" for i in range(5)]
    for s in subjects:
        send(sink, referent_mail(subject=s))
    mine = [m["Subject"] for m in read_maildir(sink.maildir) if tag in m["Subject"]]
    assert mine == subjects
    over_http = [m["subject"] for m in sink.get("/messages") if tag in m["subject"]]
    assert over_http == subjects


def test_unknown_http_path_is_404(sink: Sink) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        sink.get("/nope")
    assert err.value.code == 404


def test_read_maildir_of_missing_directory_is_empty(tmp_path: Path) -> None:
    assert read_maildir(tmp_path / "absent") == []


def test_sigterm_stops_the_sink_cleanly_and_keeps_mail(tmp_path: Path) -> None:
    s = start_sink(tmp_path / "maildir")
    try:
        msg = referent_mail()
        send(s, msg)
    finally:
        s.proc.send_signal(signal.SIGTERM)
        returncode = s.proc.wait(timeout=10)
    assert returncode == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.smtp_port), timeout=1).close()
    # mail survives the process
    assert [m["Message-ID"] for m in read_maildir(tmp_path / "maildir")] == [msg["Message-ID"]]


def test_sigint_also_stops_the_sink(tmp_path: Path) -> None:
    s = start_sink(tmp_path / "maildir")
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(timeout=10) == 0


def test_refused_recipients_get_a_550(tmp_path: Path) -> None:
    sink = start_sink(
        tmp_path / "maildir", "--refuse", "@rebond.example", "--refuse", "nul@example.org"
    )
    try:
        with smtplib.SMTP("127.0.0.1", sink.smtp_port, timeout=10) as smtp:
            for rcpt in ("x@rebond.example", "NUL@example.org"):
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    smtp.send_message(referent_mail(), to_addrs=[rcpt])
                assert refused.value.recipients[rcpt][0] == 550
        assert read_maildir(sink.maildir) == []
        assert sink.get("/stats") == {"stored": 0, "duplicates": 0, "refused": 2, "failed": 0}
    finally:
        stop_sink(sink)


def test_a_message_sent_twice_is_stored_twice_and_counted_as_a_duplicate(
    tmp_path: Path,
) -> None:
    """Issue 18: a real relay delivers a repeated Message-ID again; the sink does too, and
    says so, so a test looking for a message sent twice sees it."""
    sink = start_sink(tmp_path / "maildir")
    try:
        msg, other = referent_mail(), referent_mail()
        send(sink, msg)
        send(sink, other)
        assert sink.get("/duplicates") == []
        send(sink, msg)  # a retried send: same Message-ID
        stored = [m["Message-ID"] for m in read_maildir(sink.maildir)]
        assert stored == [msg["Message-ID"], other["Message-ID"], msg["Message-ID"]]
        assert sink.get("/stats") == {"stored": 3, "duplicates": 1, "refused": 0, "failed": 0}
        [repeated] = sink.get("/duplicates")
        assert (repeated["message_id"], repeated["copies"]) == (msg["Message-ID"], 2)
        assert repeated["subject"] == msg["Subject"]
    finally:
        stop_sink(sink)
    restarted = start_sink(tmp_path / "maildir")
    try:
        # the copies already stored are counted again after a restart
        assert restarted.get("/stats")["duplicates"] == 1
        send(restarted, msg)
        assert restarted.get("/stats")["duplicates"] == 2
        assert [d["copies"] for d in restarted.get("/duplicates")] == [3]
        assert len(read_maildir(restarted.maildir)) == 4
        # emptying the Maildir forgets the ids
        req = urllib.request.Request(
            f"http://127.0.0.1:{restarted.http_port}/messages", method="DELETE"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read()) == {"deleted": 4}
        send(restarted, msg)
        assert restarted.get("/stats")["duplicates"] == 0
        assert restarted.get("/duplicates") == []
    finally:
        stop_sink(restarted)


def test_a_message_the_sink_cannot_store_is_refused_for_now_and_reported(tmp_path: Path) -> None:
    """Issue 18: the sink never loses a message silently. One it cannot store is answered 451
    (the sender keeps it and retries) and reported in /stats and /failures."""
    sink = start_sink(tmp_path / "maildir")
    try:
        send(sink, referent_mail())
        shutil.rmtree(sink.maildir)  # the Maildir is gone: nothing can be stored any more
        lost = referent_mail()
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(sink, lost)
        assert refused.value.smtp_code == 451
        assert sink.get("/stats") == {"stored": 1, "duplicates": 0, "refused": 0, "failed": 1}
        [failure] = sink.get("/failures")
        assert failure["message_id"] == lost["Message-ID"]
        assert failure["envelope_to"] == ["camille.martin@example.org"]
        assert "FileNotFoundError" in failure["error"]
    finally:
        stop_sink(sink)


def test_a_sink_whose_port_is_taken_exits_with_an_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "devstack.smtp_sink",
                "--port",
                str(port),
                "--maildir",
                str(tmp_path / "maildir"),
            ],
            capture_output=True,
            timeout=30,
        )
    assert proc.returncode != 0
    assert b"address already in use" in proc.stderr.lower()


async def test_the_in_process_sink_of_the_unit_tests_raises_when_it_cannot_start(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sink = InProcessSink(tmp_path)
        sink.port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await sink.start()


def test_the_chaos_judge_explains_a_repeat_read_from_the_real_sink(tmp_path: Path) -> None:
    """A 10,000-file chaos run was judged failed on its own explained repeats: the
    observation dropped the subject of the sink's `/duplicates`, so the judge could not match
    an email repeated under its Message-ID with the same subject's count. Read from a real
    sink now: explained after a kill of notification, a duplicate without one."""
    from devstack.chaos_observe import mail_repeats, maildir_subjects
    from devstack.chaos_plan import Observation, judge, verdict

    own = start_sink(tmp_path / "maildir")
    try:
        msg = referent_mail("Votre dossier GU-2026-CHAOS001 : Thomas Laurent est votre référent")
        msg["X-Guichet-File"] = "GU-2026-CHAOS001"
        send(own, msg)
        send(own, msg)  # sent again under its recorded Message-ID after a kill
        repeats = mail_repeats(own.get("/duplicates"))
    finally:
        stop_sink(own)
    obs = Observation(
        submitted=["GU-2026-CHAOS001"],
        intake_files={"GU-2026-CHAOS001": "repondu"},
        assignment_files={"GU-2026-CHAOS001": ("repondu", "AG-1")},
        assignments={"GU-2026-CHAOS001": 1},
        notifications={"GU-2026-CHAOS001": {"answer_ready": ["envoye"]}},
        mail_duplicates=repeats,
        mail_subjects=maildir_subjects(tmp_path / "maildir"),
    )

    assert verdict(judge(obs, notification_kills=1)) == []
    assert verdict(judge(obs)) == [
        "1 duplicate messages (mail)",
        "1 duplicate messages (mail_same_subject)",
    ]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"Subject: a\r\nMessage-ID: <GU-1.accuse@gu.fr>\r\nTo: b\r\n", "<GU-1.accuse@gu.fr>"),
        (b"message-id:   <x@y>  \n", "<x@y>"),
        (b"Subject: a\r\nMessage-ID:\r\n <folded@y>\r\nTo: b\r\n", "<folded@y>"),
        (b"Subject: a\r\nX-Original-Message-ID: <not@this>\r\n", None),
        (b"Subject: a\r\n", None),
    ],
)
def test_the_message_id_is_read_as_the_email_package_reads_it(
    head: bytes, expected: str | None
) -> None:
    """The sink keys its copies on the Message-ID read from the header block as text: the
    value the email package parses, and only from the headers, not from the body."""
    from email import message_from_bytes, policy

    from devstack.smtp_sink import _message_id

    raw = head + b"\r\nMessage-ID: <in-the-body@y>\r\n"
    parsed = message_from_bytes(raw, policy=policy.default)["Message-ID"]
    assert (str(parsed).strip() if parsed else None) == expected
    assert _message_id(raw) == expected


def test_a_delivered_message_is_a_whole_file_of_the_maildir_in_arrival_order(
    tmp_path: Path,
) -> None:
    """`deliver` writes into tmp/ and renames into new/ (no fsync, unlike
    `mailbox.Maildir.add`): the standard reader finds each message whole, in the order they
    came, and nothing is left in tmp/."""
    box = mailbox.Maildir(tmp_path / "maildir", factory=None, create=True)
    bodies = [f"Subject: message {i}\n\ncorps {i}\n".encode() for i in range(5)]
    keys = [deliver(tmp_path / "maildir", body) for body in bodies]
    assert sorted(box.keys(), key=smtp_sink._key_order) == keys
    assert [box.get_bytes(key) for key in keys] == bodies
    assert list((tmp_path / "maildir" / "tmp").iterdir()) == []
    assert [str(m["Subject"]) for m in read_maildir(tmp_path / "maildir")] == [
        f"message {i}" for i in range(5)
    ]


def test_a_message_that_cannot_be_written_leaves_no_file_behind(tmp_path: Path) -> None:
    mailbox.Maildir(tmp_path / "maildir", factory=None, create=True)
    with pytest.raises(TypeError):  # the write fails once its file exists in tmp/
        deliver(tmp_path / "maildir", "du texte, pas des octets")  # type: ignore[arg-type]
    for part in ("tmp", "new", "cur"):
        assert list((tmp_path / "maildir" / part).iterdir()) == []

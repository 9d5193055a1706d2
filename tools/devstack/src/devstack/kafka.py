"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars, no Docker.

`deploy/kafka/pom.xml` copies the broker's jars into `<root>/.cache/kafka/libs`; `LocalKafka`
runs them as one combined broker+controller node on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from devstack import kafka_sasl
from devstack.kafka_sasl import KafkaAccess
from devstack.kafka_tls import BrokerCertificates, broker_certificates
from devstack.ports import free_ports

KAFKA_VERSION = "4.1.1"
# TieredStopAtLevel=1: C1-only JIT starts the JVM faster; a test broker never runs long enough
# to profit from C2. -Xlog:cds*=off: the class-data-sharing archive (see _cds_flags) otherwise
# prints hundreds of harmless "skipping class" warnings.
JVM_FLAGS = ["-Xmx512m", "-Xms512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Xlog:cds*=off"]

T = TypeVar("T")


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code.

    Uses a private thread so it works even when the caller sits inside a running event loop
    (async pytest fixtures) and never touches the caller's current loop.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def ensure_kafka_jars(root: Path) -> Path:
    """Copy the broker jars into `<root>/.cache/kafka/libs` with Maven unless already done.

    A marker file written after a successful copy makes an interrupted copy start over.
    """
    libs = root / ".cache" / "kafka" / "libs"
    marker = libs / ".complete"
    if marker.is_file() and marker.read_text().strip() == KAFKA_VERSION:
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Serialise concurrent callers (parallel test runs, `make run`) on the same cache.
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == KAFKA_VERSION:
            return libs
        if shutil.which("mvn") is None:
            raise RuntimeError(
                "Maven (mvn) is needed to fetch the Kafka jars: apt-get install -y maven"
            )
        shutil.rmtree(libs, ignore_errors=True)
        pom = root / "deploy" / "kafka" / "pom.xml"
        cmd = [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "package",
            f"-Dkafka.libs.dir={libs}",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            raise RuntimeError(
                "fetching Kafka jars failed "
                f"({' '.join(cmd)}):\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
            )
        marker.write_text(KAFKA_VERSION)
    return libs


def _cluster_id() -> str:
    """A Kafka cluster id (base64url UUID, like `kafka-storage random-uuid`), without a JVM
    start."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids these too: they read like CLI options
            return cid


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


async def _broker_ready(access: KafkaAccess) -> bool:
    """One real metadata round trip: the broker has joined the cluster and answers clients."""
    admin = AIOKafkaAdminClient(**access.client_options(), request_timeout_ms=3000)
    try:
        await admin.start()
        info = await admin.describe_cluster()
        return bool(info.get("brokers"))
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()


class LocalKafka:
    """One combined KRaft broker+controller on 127.0.0.1, data and log in `workdir`.

    `root` is the repository root (holds deploy/kafka and .cache). Port 0 means pick a free one.
    Reusing a `workdir` keeps the topics and data of the previous run.
    `sasl`: authenticate every client (SCRAM-SHA-512) and authorise it by ACLs, as on a cluster
    (see devstack.kafka_sasl); `access` then holds the users' credentials. `tls` (with `sasl`):
    over TLS (SASL_SSL), the certificates made in `<workdir>/tls` (devstack.kafka_tls).
    `users`: the SCRAM users to create (default: every principal of the project, see
    kafka_sasl.default_users).
    """

    def __init__(
        self,
        root: Path,
        workdir: Path,
        port: int = 0,
        controller_port: int = 0,
        *,
        sasl: bool = False,
        tls: bool = False,
        users: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.sasl = sasl
        self.tls: BrokerCertificates | None = None
        self._want_tls = tls
        self._users = users
        self.passwords: dict[str, str] = {}
        self.workdir = Path(workdir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "kafka.log"
        self._cds_dump: tuple[Path, Path] | None = None  # (temporary, final) archive being written
        self._ready = False

    def _cds_flags(self, libs: Path) -> list[str]:
        """Class-data-sharing archive of the broker's classes: cuts ~1 s off every JVM start.

        The first broker writes it at exit (renamed into place by stop()); later JVMs map it. It is
        keyed on the java binary because an archive only loads in the JVM build that wrote it.
        """
        java = Path(shutil.which("java") or "java").resolve()
        java_mtime = java.stat().st_mtime_ns if java.exists() else 0
        key = f"{zlib.crc32(f'{java}:{java_mtime}'.encode()):08x}"
        final = (
            libs / f"kafka-cds-{key}.jsa"
        )  # inside libs: wiped with a re-fetch; `libs/*` only picks *.jar
        if final.exists():
            return [f"-XX:SharedArchiveFile={final}"]
        tmp = libs / f".kafka-cds-{os.getpid()}-{id(self):x}.tmp"
        self._cds_dump = (tmp, final)
        return [f"-XX:ArchiveClassesAtExit={tmp}"]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def access(self) -> KafkaAccess:
        """Where and as whom clients connect (credentials only with `sasl`)."""
        ca_file = str(self.tls.ca_file) if self.tls else None
        return KafkaAccess(self.bootstrap, dict(self.passwords), ca_file)

    def _write_config(self, path: Path, log_dirs: Path) -> Path:
        if self.sasl:
            listeners = kafka_sasl.listener_properties(
                self.port, self.controller_port, self.passwords[kafka_sasl.ADMIN], self.tls
            )
        else:
            listeners = {
                "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
            }
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            **listeners,
            "controller.listener.names": "CONTROLLER",
            # Static voters: the storage format needs no --standalone and survives port changes.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(log_dirs),
            "num.partitions": "3",
            # An offset-index entry per MiB of log instead of per 4 KiB: each entry is
            # written into a memory-mapped, sparse index file, and on this project's
            # machines (Linux 6.18, large page-cache folios) a write reaching a new part of
            # it zero-fills a whole folio. Under `make bench` that zeroing was 58 % of the
            # broker's request thread, 13 % of the whole 2-core box (docs/performance.md).
            # A consumer reading from an arbitrary offset scans at most 1 MiB more.
            "log.index.interval.bytes": str(1024 * 1024),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _formatted_storage(self, libs: Path, cds: Sequence[str]) -> Path:
        """Empty KRaft storage, formatted once per jar cache and copied for each new broker.

        Saves a JVM run (~0.8 s) per start. Every local broker thus gets the same cluster id,
        which is harmless for independent single-node clusters. With `sasl` the SCRAM users are
        created in it: one template per set of credentials.
        """
        # A directory: not on the `libs/*` classpath.
        template = libs / "formatted-storage"
        scram: list[str] = []
        if self.sasl:
            template = libs / f"formatted-storage-sasl-{kafka_sasl.storage_key(self.passwords)}"
            scram = kafka_sasl.scram_arguments(self.passwords)
        if (template / "meta.properties").exists():
            return template
        with tempfile.TemporaryDirectory(dir=libs, prefix=".format-") as tmp:
            config = self._write_config(Path(tmp) / "format.properties", Path(tmp) / "data")
            cmd = self._java(
                libs,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(config),
                *scram,
                cds=cds,
            )
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"kafka storage format failed:\n{res.stdout}{res.stderr}")
            try:
                os.rename(Path(tmp) / "data", template)  # atomic; a concurrent caller may have won
            except OSError:
                if not (template / "meta.properties").exists():
                    raise
        return template

    def _java(self, libs: Path, *args: str, cds: Sequence[str] = ()) -> list[str]:
        log_cfg = self.root / "deploy" / "kafka" / "log4j2.properties"
        return [
            "java",
            *JVM_FLAGS,
            *cds,
            f"-Dlog4j2.configurationFile={log_cfg}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def start(self, timeout: float = 90) -> str:
        """Start the broker and block until it answers metadata requests; return the bootstrap."""
        if self.proc is not None and self.proc.poll() is None:
            return self.bootstrap
        libs = ensure_kafka_jars(self.root)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.sasl and not self.passwords:
            users = self._users or kafka_sasl.default_users(self.root)
            self.passwords = kafka_sasl.passwords(libs.parent, {*users, kafka_sasl.ADMIN})
        if self.sasl and self._want_tls:
            self.tls = broker_certificates(self.workdir / "tls")
        # Both chosen together (held while picked): never the same port twice.
        spare = iter(free_ports(2))
        self.port = self.port or next(spare)
        self.controller_port = self.controller_port or next(spare)
        # A busy port would otherwise pass the readiness probe against whatever already listens
        # there.
        if busy := [p for p in (self.port, self.controller_port) if _port_open(p)]:
            raise RuntimeError(f"kafka ports already in use on 127.0.0.1: {busy}")
        data = self.workdir / "data"
        if self.sasl:  # its own storage (with its users): a workdir may switch modes
            data = self.workdir / f"data-sasl-{kafka_sasl.storage_key(self.passwords)}"
        config = self._write_config(self.workdir / "server.properties", data)
        cds = self._cds_flags(libs)
        if not (data / "meta.properties").exists():
            shutil.rmtree(data, ignore_errors=True)
            shutil.copytree(self._formatted_storage(libs, [] if self._cds_dump else cds), data)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(config), cds=cds),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: stop() signals the JVM and nothing else.
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            _run_sync(self._wait_ready(time.monotonic() + timeout))
        except BaseException:
            self.stop(grace=5)
            raise
        self._ready = True
        if self.sasl:
            kafka_sasl.register(self.access, libs.parent)
        return self.bootstrap

    async def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kafka exited with code {self.proc.returncode} during "
                    f"startup:\n{log_tail(self.log_path)}"
                )
            # Probe the port first: aiokafka logs an ERROR for every refused bootstrap.
            if _port_open(self.port) and await _broker_ready(self.access):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kafka not ready at {self.bootstrap}:\n{log_tail(self.log_path)}"
                )
            await asyncio.sleep(0.1)

    def stop(self, grace: float = 15) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after `grace` seconds."""
        proc, self.proc, ready, self._ready = self.proc, None, self._ready, False
        atexit.unregister(self.stop)
        kafka_sasl.unregister(self.bootstrap)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._cds_dump:
            tmp, final = self._cds_dump
            self._cds_dump = None
            # Keep only an archive from a broker that fully started and exited on SIGTERM: a
            # SIGKILLed JVM leaves a partial file, one stopped mid-startup lacks most classes.
            if ready and sig == signal.SIGTERM and tmp.exists():
                os.replace(tmp, final)
            else:
                tmp.unlink(missing_ok=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_root(start: Path | None = None) -> Path:
    """The repository root: first parent of `start` (default cwd), then of this file, with
    deploy/kafka/pom.xml."""
    for base in (Path(start or Path.cwd()).resolve(), Path(__file__).resolve()):
        for d in (base, *base.parents):
            if (d / "deploy" / "kafka" / "pom.xml").is_file():
                return d
    raise RuntimeError("cannot find the repository root (deploy/kafka/pom.xml)")


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="python -m devstack.kafka", description=main.__doc__)
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--controller-port", type=int, default=0)
    ap.add_argument(
        "--root", type=Path, default=None, help="repository root (default: found from cwd)"
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="default: <root>/var/kafka (data is kept)"
    )
    args = ap.parse_args(argv)
    root = args.root or find_root()
    kafka = LocalKafka(
        root, args.workdir or root / "var" / "kafka", args.port, args.controller_port
    )
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(kafka.start(), flush=True)
    try:
        while not stopping.wait(0.5):
            if kafka.proc is None or kafka.proc.poll() is not None:
                print(f"kafka died:\n{log_tail(kafka.log_path)}", file=sys.stderr)
                return 1
    finally:
        kafka.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

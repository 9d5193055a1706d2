"""Authentication and authorisation of the local broker (devstack.kafka), as on a cluster.

The local broker listens with SASL SCRAM-SHA-512 (SASL_PLAINTEXT: it only listens on the
loopback), authorises with KRaft's StandardAuthorizer and denies whatever no ACL allows. Each
service and adapter is its own principal (its name, like its Strimzi KafkaUser); `admin` is the
super user that starts the broker, creates topics and ACLs, and serves devstack's tools and the
tests' own clients; `operator` is guichet-admin's. The ACLs come from `shared_models.topology.acls`,
the same derivation as the KafkaUsers of deploy/k8s, so both cannot drift.

Users are created when the storage is formatted (`kafka-storage format --add-scram`); their
passwords derive from a secret kept in the jar cache, so the formatted storage is reused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import os
import secrets
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest
from faststream.security import SASLScram512

from devstack.kafka_tls import BrokerCertificates
from shared_models import topics, topology

MECHANISM = "SCRAM-SHA-512"
#: The super user: the broker's own (controller and inter-broker) identity, admin tools, tests.
ADMIN = "admin"

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
_RESOURCE = {"topic": 2, "group": 3}
_OPERATION = {"Read": 3, "Write": 4, "Describe": 8}
_LITERAL = 3
_ALLOW = 3


def default_users(root: Path) -> list[str]:
    """Every principal a local stack may run: the core services, the adapter of every agency
    under `<root>/adapters` (and of the core's), the operators' and the super user."""
    agencies = set(topology.core_agencies())
    agencies |= {d.name for d in (root / "adapters").iterdir() if (d / "pyproject.toml").exists()}
    names = set(topology.principals(agencies)) | {topology.OPERATOR, ADMIN}
    return sorted(names)


def _secret(directory: Path) -> bytes:
    """The cache's random secret the local passwords derive from (created once)."""
    path = directory / ".sasl-secret"
    if not path.exists():
        # Written aside then linked into place: a concurrent caller never reads half a file,
        # and the first link wins.
        tmp = directory / f".sasl-secret-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def passwords(directory: Path, users: Iterable[str]) -> dict[str, str]:
    """Each user's password: HMAC of its name under the cache's secret."""
    key = _secret(directory)
    return {u: hmac.new(key, u.encode(), hashlib.sha256).hexdigest() for u in sorted(users)}


def storage_key(users: Mapping[str, str]) -> str:
    """Names a formatted storage by the credentials it holds."""
    digest = hashlib.sha256("".join(f"{u}:{p}\n" for u, p in sorted(users.items())).encode())
    return digest.hexdigest()[:12]


def scram_arguments(users: Mapping[str, str]) -> list[str]:
    """`kafka-storage format` arguments creating the users."""
    args: list[str] = []
    for name, password in sorted(users.items()):
        args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
    return args


def listener_properties(
    port: int, controller_port: int, admin_password: str, tls: BrokerCertificates | None = None
) -> dict[str, str]:
    """The broker's listeners and authoriser: SCRAM for clients (over TLS with `tls`), PLAIN
    between the broker and its controller (SCRAM users live in the metadata the controller
    serves), both as `admin`."""
    scram = f'username="{ADMIN}" password="{admin_password}";'
    plain = f'username="{ADMIN}" password="{admin_password}" user_{ADMIN}="{admin_password}";'
    client = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    certificates = (
        {
            "listener.name.client.ssl.keystore.type": "PEM",
            "listener.name.client.ssl.keystore.location": str(tls.keystore),
            # The broker's own (inter-broker) connections to that listener trust the same CA.
            "listener.name.client.ssl.truststore.type": "PEM",
            "listener.name.client.ssl.truststore.location": str(tls.ca_file),
        }
        if tls
        else {}
    )
    return {
        **certificates,
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{port}",
        "listener.security.protocol.map": f"CLIENT:{client},CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "CLIENT",
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": (
            f"org.apache.kafka.common.security.scram.ScramLoginModule required {scram}"
        ),
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain}"
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
    }


@dataclass(frozen=True)
class KafkaAccess:
    """How to reach a broker and as whom: `passwords` empty means no authentication."""

    bootstrap: str
    passwords: Mapping[str, str] = field(default_factory=dict)
    #: The CA of the broker's TLS listener (None: SASL_PLAINTEXT).
    ca_file: str | None = None

    @property
    def sasl(self) -> bool:
        return bool(self.passwords)

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.ca_file else "SASL_PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None

    def client_options(self, user: str = ADMIN) -> dict[str, Any]:
        """Keyword arguments of an aiokafka client (admin, consumer, producer) as `user`."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.sasl:
            options |= {
                "security_protocol": self.protocol,
                "sasl_mechanism": MECHANISM,
                "sasl_plain_username": user,
                "sasl_plain_password": self.passwords[user],
            }
            if self.ca_file:
                options["ssl_context"] = self.ssl_context()
        return options

    def env(self, user: str) -> dict[str, str]:
        """Environment of a process authenticating as `user` (see guichet_runtime.settings)."""
        if not self.sasl:
            return {"KAFKA_BOOTSTRAP": self.bootstrap}
        return {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
            "KAFKA_SECURITY_PROTOCOL": self.protocol,
            **({"KAFKA_CA_FILE": self.ca_file} if self.ca_file else {}),
            # Topics are created by `prepare` as admin: a principal may not create any.
            "CREATE_TOPICS": "false",
        }

    async def prepare(self, namespace: str, agencies: Iterable[str]) -> None:
        """Create the topics of a stack under `namespace` and, with authentication, the ACLs
        of every principal (services, adapters of `agencies`, operator) on them."""
        agencies = sorted(set(agencies) | set(topology.core_agencies()))
        declared = topics.all_topics() | topology.topics_of(agencies)
        await create_topics(self, {namespace + t: n for t, n in declared.items()})
        if self.sasl:
            found = [*topology.principals(agencies).values(), topology.operator(agencies)]
            await create_acls(self, {p.name: topology.acls(p, namespace) for p in found})

    def prepare_blocking(self, namespace: str, agencies: Iterable[str]) -> None:
        """`prepare` from sync code, even inside a running event loop (a private thread)."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self.prepare(namespace, list(agencies))).result()


#: Running SASL brokers by bootstrap, so code given only a bootstrap (a Stack, a test's helper
#: client) finds their credentials; see `access`.
_registered: dict[str, KafkaAccess] = {}
#: The same for child processes (`guichet-dev bench --kafka-bootstrap` run by a test): bootstrap
#: -> the cache directory whose secret the passwords derive from, and the users.
ENV = "DEVSTACK_KAFKA_SASL"


def register(access: KafkaAccess, cache: Path) -> None:
    _registered[access.bootstrap] = access
    known = json.loads(os.environ.get(ENV) or "{}")
    known[access.bootstrap] = {
        "cache": str(cache),
        "users": sorted(access.passwords),
        "ca_file": access.ca_file,
    }
    os.environ[ENV] = json.dumps(known)


def unregister(bootstrap: str) -> None:
    _registered.pop(bootstrap, None)
    known = json.loads(os.environ.get(ENV) or "{}")
    if known.pop(bootstrap, None) is not None:
        os.environ[ENV] = json.dumps(known)


def access(bootstrap: str) -> KafkaAccess:
    """The credentials of a local broker started by this process (or by a parent process),
    else none."""
    if found := _registered.get(bootstrap):
        return found
    inherited = json.loads(os.environ.get(ENV) or "{}").get(bootstrap)
    if inherited:
        derived = passwords(Path(inherited["cache"]), inherited["users"])
        return KafkaAccess(bootstrap, derived, inherited.get("ca_file"))
    return KafkaAccess(bootstrap)


def client_options(bootstrap: str, user: str = ADMIN) -> dict[str, Any]:
    """aiokafka keyword arguments for `bootstrap` (as the super user by default)."""
    return access(bootstrap).client_options(user)


def broker_security(bootstrap: str, user: str = ADMIN) -> SASLScram512 | None:
    """A FastStream KafkaBroker's `security` for `bootstrap` (None: no authentication)."""
    found = access(bootstrap)
    if not found.sasl:
        return None
    context = found.ssl_context()
    return SASLScram512(
        user, found.passwords[user], ssl_context=context, use_ssl=context is not None
    )


async def create_topics(
    kafka: KafkaAccess, declared: Mapping[str, int], timeout: float = 30
) -> None:
    """Create the missing topics (name -> partitions) as the super user, each with its
    retention (shared_models.topics.retention); wait for leaders."""
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, p, 1, topic_configs=topics.retention(n).configs())
            for n, p in declared.items()
            if n not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for error in response.topic_errors:
                if error[1] not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(error[1])(f"cannot create topic {error[0]}: {error[2:]}")
        deadline = time.monotonic() + timeout
        while True:  # every partition has a leader: a subscriber started next finds it ready
            metadata = await admin.describe_topics(list(declared))
            ready = {
                t["topic"]
                for t in metadata
                if t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if ready >= declared.keys():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready: {sorted(declared.keys() - ready)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


class _CreateAcls(CreateAclsRequest):
    """CreateAcls with many creations in one request (aiokafka's carries one)."""

    def __init__(self, creations: list[tuple[int, str, int, str, str, int, int]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < 1:
            return request_struct_class([(c[0], c[1], *c[3:]) for c in self._creations])
        return request_struct_class(self._creations)


async def create_acls(
    kafka: KafkaAccess, rules: Mapping[str, list[topology.Acl]], timeout: float = 30
) -> None:
    """ALLOW each principal's rules (literal resources, any host), as the super user."""
    client = AIOKafkaClient(**kafka.client_options())
    await client.bootstrap()
    try:
        node = client.get_random_node()
        creations = [
            (
                _RESOURCE[acl.resource],
                acl.name,
                _LITERAL,
                f"User:{user}",
                "*",
                _OPERATION[op],
                _ALLOW,
            )
            for user, acls in rules.items()
            for acl in acls
            for op in acl.operations
        ]
        response = await client.send(node, _CreateAcls(creations))
        for error_code, message in response.creation_responses:
            if error_code:
                raise for_code(error_code)(f"cannot create ACL: {message}")
        # The controller has stored them; wait until the broker's authoriser applies them.
        wanted = {(c[0], c[1], c[3], c[5]) for c in creations}
        deadline = time.monotonic() + timeout
        while not wanted <= await _described_acls(client, node):
            if time.monotonic() > deadline:
                raise TimeoutError("the broker did not apply the new ACLs in time")
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def _described_acls(client: AIOKafkaClient, node: int) -> set[tuple[int, str, str, int]]:
    """(resource type, name, principal, operation) of every ALLOW rule the broker applies."""
    any_ = 1
    request = DescribeAclsRequest(any_, None, any_, None, None, any_, any_)
    response = await client.send(node, request)
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    return {
        (resource[0], resource[1], principal, operation)
        for resource in response.resources
        for principal, _host, operation, permission in resource[-1]
        if permission == _ALLOW
    }

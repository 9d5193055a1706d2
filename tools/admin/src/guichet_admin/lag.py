"""Consumer lag: for each consumer group, its committed offset against each partition's end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from guichet_admin.kafka_io import TopicReader, client_options


@dataclass(frozen=True)
class PartitionLag:
    group: str
    state: str
    members: int
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        """Records published but not yet processed (committed) by the group."""
        return max(self.end - self.committed, 0)


def _describe(responses: list[Any]) -> dict[str, tuple[str, int]]:
    """group -> (state, member count) from DescribeGroups responses (any protocol version)."""
    found: dict[str, tuple[str, int]] = {}
    for response in responses:
        for group in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members[, operations])
            found[str(group[1])] = (str(group[2]), len(group[5]))
    return found


async def consumer_lag(
    bootstrap: str, namespace: str = "", group: str | None = None
) -> list[PartitionLag]:
    """Lag of every group of the namespace (or of `group`) on every partition it committed."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap))
    await admin.start()
    try:
        groups = sorted(
            str(g[0]) for g in await admin.list_consumer_groups() if str(g[0]).startswith(namespace)
        )
        if group is not None:
            wanted = group if group.startswith(namespace) else namespace + group
            groups = [g for g in groups if g == wanted]
        committed = {g: await admin.list_consumer_group_offsets(g) for g in groups}
        described = _describe(await admin.describe_consumer_groups(groups)) if groups else {}
    finally:
        await admin.close()
    partitions = sorted({tp for offsets in committed.values() for tp in offsets})
    async with TopicReader(bootstrap) as reader:
        ends = await reader.end_offsets(list(partitions))
    rows = []
    for g in groups:
        state, members = described.get(g, ("?", 0))
        for tp, meta in sorted(committed[g].items()):
            if meta.offset < 0:
                continue
            rows.append(
                PartitionLag(
                    g, state, members, tp.topic, tp.partition, meta.offset, ends.get(tp, 0)
                )
            )
    return rows

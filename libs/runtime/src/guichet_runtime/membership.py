"""A consumer group member's view of its partitions (an aiokafka rebalance listener)."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from guichet_runtime.offsets import OffsetCommits


class Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """What the group coordinator gave this process: `joined` once a first assignment
    (possibly empty) arrived, and the partitions it holds now."""

    def __init__(self, offsets: OffsetCommits | None = None) -> None:
        self.joined = False
        self.partitions: frozenset[TopicPartition] = frozenset()
        #: The handled offsets not committed yet, committed before their partitions go.
        self.offsets = offsets

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.partitions = self.partitions - set(revoked)
        if self.offsets is not None:
            await self.offsets.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.partitions = frozenset(assigned)
        self.joined = True

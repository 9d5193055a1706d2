"""Local TCP port helpers.

Ports are drawn at random from a range below Linux's ephemeral range (32768-60999 by
default, `/proc/sys/net/ipv4/ip_local_port_range`), from which every process draws the
local ports of its outgoing connections. A port the OS picks with `bind(0)` comes from that
same range: released by the chooser and not yet bound by the server it is meant for, it can
be taken by any Kafka or HTTP client's connection in the meantime ("address already in
use"), which happens under the load of several test runs at once. `GUICHET_PORT_RANGE`
("20000-26383") narrows the range, so that test runs side by side (`make test`) draw from
disjoint ranges and never hand each other's ports out.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket

#: Where ports come from unless GUICHET_PORT_RANGE says otherwise (inclusive bounds).
DEFAULT_RANGE = (20000, 32767)
RANGE_VARIABLE = "GUICHET_PORT_RANGE"
_ATTEMPTS = 500


def port_range() -> tuple[int, int]:
    """The inclusive range ports are drawn from (GUICHET_PORT_RANGE, else DEFAULT_RANGE)."""
    value = os.environ.get(RANGE_VARIABLE, "").strip()
    if not value:
        return DEFAULT_RANGE
    low, _, high = value.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        raise ValueError(f"{RANGE_VARIABLE} is 'first-last', not {value!r}") from None
    if not 1024 < first < last < 65536:
        raise ValueError(f"{RANGE_VARIABLE} must be within 1025-65535, first < last: {value!r}")
    return first, last


def _hold_one(held: contextlib.ExitStack, first: int, last: int) -> int:
    """Bind a random free port of first..last on 127.0.0.1, held until `held` closes."""
    draw = random.SystemRandom()
    for _ in range(_ATTEMPTS):
        port = draw.randint(first, last)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        held.enter_context(s)
        return port
    raise RuntimeError(f"no free TCP port found in {first}-{last} after {_ATTEMPTS} draws")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process could still take it before
    the caller binds, which is acceptable for dev/test servers)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now.

    All are held at once while chosen, so the same port cannot be handed out twice (one
    `free_port()` after another may: each port is released before the next is picked).
    """
    first, last = port_range()
    with contextlib.ExitStack() as held:
        return [_hold_one(held, first, last) for _ in range(count)]

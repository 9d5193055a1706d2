"""Local TCP port helpers."""

from __future__ import annotations

import contextlib
import socket


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now.

    The OS picks it (bind to port 0); another process could still take it before
    the caller binds, which is acceptable for dev/test servers.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 right now.

    All are held at once while chosen, so the OS cannot hand the same port out twice (one
    `free_port()` after another may: each port is released before the next is picked).
    """
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            s = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports

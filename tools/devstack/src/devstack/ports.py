"""Local TCP port helpers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now.

    The OS picks it (bind to port 0); another process could still take it before
    the caller binds, which is acceptable for dev/test servers.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

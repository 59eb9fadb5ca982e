"""Whether a server a user named (an MLflow tracking server, a Ray head) answers at all, within seconds.

Their own clients retry for minutes before they give up, and a run would sit silent meanwhile.
"""

from __future__ import annotations

import socket

__all__ = ["unreachable"]


def unreachable(host: str, port: int, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers a TCP connection to host:port within `timeout_s`; None when something does.

    Args:
        host: a name or an address.
        port: the TCP port.
        timeout_s: how long to wait for the connection.

    Returns: e.g. "127.0.0.1:1 does not answer (Connection refused)", or None.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{host}:{port} does not answer ({exc.strerror or type(exc).__name__})"

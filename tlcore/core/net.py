"""Whether a server a user named (an MLflow tracking server, a Ray head) answers at all, within seconds.

Their own clients retry for minutes before they give up, and a run would sit silent meanwhile.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

__all__ = ["unreachable", "not_grpc", "not_http"]

# What an HTTP/2 client sends first (RFC 9113, 3.4): the preface, then its SETTINGS frame (empty). A gRPC server (a
# Ray cluster's GCS, a Ray Client server) answers with its own SETTINGS frame: 9 bytes, type 4, stream 0.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


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


def not_grpc(host: str, port: int, timeout_s: float = 5.0) -> str | None:
    """Why host:port is not a gRPC server (what a Ray cluster speaks), found within `timeout_s`; None when it is.

    A plain HTTP server answers the HTTP/2 preface with an HTTP/1 error, a silent one with nothing: Ray's own client
    would retry either for minutes, printing "Failed to connect to GCS".

    Args:
        host: a name or an address.
        port: the TCP port.
        timeout_s: the deadline for the connection and the answer together.

    Returns:
        e.g. "127.0.0.1:8799 answers, but as an HTTP/1 server, not a Ray cluster", or None.
    """
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(_HTTP2_PREFACE)
            answer = b""
            while len(answer) < 9:
                conn.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = conn.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except socket.timeout:
        return f"{host}:{port} accepts connections but says nothing within {timeout_s:g} s: no Ray cluster there"
    except OSError as exc:
        return f"{host}:{port} does not answer ({exc.strerror or type(exc).__name__})"
    if len(answer) == 9 and answer[3] == 4 and answer[5:9] == bytes(4):
        return None
    if answer.startswith(b"HTTP/"):
        return f"{host}:{port} answers, but as an HTTP/1 server, not a Ray cluster"
    return f"{host}:{port} answers, but not as a Ray cluster (no gRPC there)"


def not_http(url: str, timeout_s: float = 5.0) -> str | None:
    """Why `url` gets no HTTP answer within `timeout_s` (any status counts as an answer); None when it gets one.

    Args:
        url: an http(s) address, e.g. an MLflow server's `/health`.
        timeout_s: the deadline for the answer.

    Returns:
        e.g. "http://127.0.0.1:5000 accepts connections but sends no answer within 5 s", or None.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310 - the user's own server, http(s) only
            return None
    except urllib.error.HTTPError:
        return None  # an answer, if not a happy one
    except (socket.timeout, TimeoutError):
        return f"{url} accepts connections but sends no answer within {timeout_s:g} s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"{url} accepts connections but sends no answer within {timeout_s:g} s"
        return f"{url} does not answer ({getattr(reason, 'strerror', None) or reason})"
    except (OSError, ValueError) as exc:
        return f"{url} does not answer ({exc})"

"""Servers a user names (a Ray cluster, an MLflow tracking server) are checked by what they speak, within seconds
(issue 37): before, an HTTP server or a port that accepts and never answers held `--ray` and MLflow runs for
minutes (Ray's "Failed to connect to GCS" repeated; MLflow past 240 s)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tlcore.core.net import not_grpc, not_http
from tlcore.results.tracking import unreachable_server


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def grpc_like_port() -> Iterator[int]:
    """Answers the HTTP/2 preface with a SETTINGS frame, as a gRPC server (Ray's GCS) does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(bytes([0, 0, 6, 4, 0, 0, 0, 0, 0]) + bytes(6))

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_ray_addresses_that_are_no_ray_are_said_within_the_deadline(http_port: int, silent_port: int,
                                                                     grpc_like_port: int) -> None:
    started = time.monotonic()
    assert "answers, but not as a Ray cluster" in not_grpc("127.0.0.1", http_port, 2.0)
    assert "says nothing within 2 s" in not_grpc("127.0.0.1", silent_port, 2.0)
    assert "does not answer" in not_grpc("127.0.0.1", 1, 2.0)
    assert time.monotonic() - started < 10
    assert not_grpc("127.0.0.1", grpc_like_port, 2.0) is None


def test_an_mlflow_server_that_never_answers_is_said(http_port: int, silent_port: int) -> None:
    started = time.monotonic()
    assert "sends no answer within" in unreachable_server(f"http://127.0.0.1:{silent_port}", 2.0)
    assert time.monotonic() - started < 8
    assert not_http(f"http://127.0.0.1:{http_port}/health", 2.0) is None  # any HTTP answer, 501 included
    assert unreachable_server("file:///tmp/mlruns") is None

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


def _grpc_server(handlers: dict) -> tuple[object, int]:
    """A real gRPC server (grpcio, installed with Ray) answering only `handlers` ({"/svc/Method": status or None})."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    class Handlers(grpc.GenericRpcHandler):
        def service(self, details):
            if details.method not in handlers:
                return None  # grpc answers UNIMPLEMENTED, as any server that does not know the call
            status = handlers[details.method]

            def answer(request, context):
                if status is not None:
                    context.abort(status, "no token")
                return b""
            return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[Handlers()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_a_grpc_server_that_is_not_ray_is_said_within_seconds_and_ray_is_recognised(tl_home) -> None:
    """Issue 37: `--ray` at any gRPC server passed the protocol check, and Ray then retried past 120 s (its "Failed
    to connect to GCS" every 5 s), leaving the run queued; `ray://` there took 33 s. Ray's endpoints know their calls
    (answered or refused for a missing token, as a real `ray start --head` of Ray 2.60 does), other servers do not."""
    from conftest import ray_or_skip

    ray_or_skip()
    grpc = pytest.importorskip("grpc")
    from tlcore.errors import TransferLabError
    from tlcore.running.on_ray import _RAY_CALLS, connect, not_ray

    empty, port = _grpc_server({})
    ray_like, ray_port = _grpc_server({_RAY_CALLS[False]: grpc.StatusCode.UNAUTHENTICATED,
                                       _RAY_CALLS[True]: None})
    try:
        started = time.monotonic()
        assert not_ray(f"127.0.0.1:{port}", 5.0) == (f"127.0.0.1:{port} speaks gRPC, but not as a Ray cluster (it "
                                                     "has no GetClusterId)")
        assert "not as a Ray Client server (it has no ClusterInfo)" in not_ray(f"ray://127.0.0.1:{port}", 5.0)
        assert "does not answer" in not_ray("127.0.0.1:1", 5.0)
        assert not_ray(f"127.0.0.1:{ray_port}", 5.0) is None  # refused for its token: Ray's own answer
        assert not_ray(f"ray://127.0.0.1:{ray_port}", 5.0) is None
        with pytest.raises(TransferLabError, match="speaks gRPC, but not as a Ray cluster"):
            connect(f"127.0.0.1:{port}")
        assert time.monotonic() - started < 30
    finally:
        empty.stop(0)
        ray_like.stop(0)

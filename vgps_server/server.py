"""Serve any policy over HTTP/1.1 in its own process and environment: :class:`PolicyServer`.

Endpoints (docs/serving.md):

====================  ==============================  ===========================================
``GET /metadata``     —                               JSON: protocol, name, action_dim, chunk…
``POST /reset``       JSON ``{"batch_size": B}``      JSON ``{"ok": true}``
``POST /sample``      ``.npz`` (:mod:`vgps_server.wire`) ``.npz`` ``{"actions": [B, K, (H,) 7]}``
``POST /select``      ``.npz`` ``{"index": int [B]}``   ``.npz`` ``{"actions": [B, 7]}`` or ``{}``
====================  ==============================  ===========================================

Errors answer JSON ``{"error": message}`` with 400 (malformed request: the message names the field),
404 (unknown path) or 500 (the policy raised; the message carries its exception). A *backend* is any
object with ``sample_actions(observations, instructions, num_samples, rng) -> [B, K, (H,) 7]``
(``rng``: ``uint32[B, 2]``, one raw PRNG key per row), ``reset(batch_size)`` and optionally
``metadata() -> dict``; a backend with ``sample_chunks -> [B, K, H, 7]`` (an action-chunking
policy) is served through that; a backend with ``select(index) -> [B, 7] | None`` takes the
steering layer's choice back (metadata ``select: true``) and may answer the action to execute
instead of the chosen candidate (Octo under the released V-GPS scoring). Requests are served one at a time (a lock around the backend), on as many
connections as clients open. Standard library and numpy only.
"""
from __future__ import annotations

import json
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from vgps_server import wire


def backend_metadata(backend) -> dict:
    meta = {"name": getattr(backend, "name", type(backend).__name__), "action_dim": 7,
            "chunk_length": 1}
    if hasattr(backend, "metadata"):
        meta.update(backend.metadata())
    meta["protocol"] = wire.PROTOCOL
    meta["select"] = hasattr(backend, "select")       # takes the steering layer's choice back
    return meta


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"            # keep-alive: one connection per client
    disable_nagle_algorithm = True           # headers and body leave at once (else +40 ms per
                                             # request: Nagle's wait meets the client's delayed ACK)
    server: "_Server"

    def log_message(self, fmt, *args):       # quiet unless asked
        if self.server.verbose:
            super().log_message(fmt, *args)

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.server.stopping:             # a stopped server answers nothing, on any connection
            self.close_connection = True
            return False
        return True

    def _reply(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, wire.encode_json({"error": message}), "application/json")

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > wire.MAX_MESSAGE_BYTES:
            raise wire.ProtocolError(f"request of {n} bytes exceeds {wire.MAX_MESSAGE_BYTES}")
        return self.rfile.read(n)

    def do_GET(self):
        if self.path != "/metadata":
            return self._error(404, f"unknown path {self.path!r}; GET /metadata, POST /reset, "
                                    f"POST /sample, POST /select")
        self._reply(200, wire.encode_json(self.server.metadata), "application/json")

    def do_POST(self):
        try:
            body = self._body()
        except (wire.ProtocolError, ValueError) as e:
            self.close_connection = True
            return self._error(400, str(e))
        if self.path == "/reset":
            try:
                b = json.loads(body or b"{}")["batch_size"]
                if not isinstance(b, int) or isinstance(b, bool) or b < 1:
                    raise ValueError(f"batch_size must be an integer >= 1, got {b!r}")
            except (ValueError, KeyError, TypeError) as e:
                return self._error(400, f"reset: expected JSON {{\"batch_size\": B}} ({e})")
            return self._call(lambda: self.server.backend.reset(b),
                              lambda _: (wire.encode_json({"ok": True}), "application/json"))
        if self.path == "/sample":
            try:
                obs, instr, k, rng = wire.parse_sample_request(wire.decode(body))
            except wire.ProtocolError as e:
                return self._error(400, f"sample: {e}")
            name = self.server.metadata["name"]

            def answer(actions):
                a = wire.check_actions(actions, len(instr), k, f"policy {name!r}")
                return wire.encode({"actions": a}), "application/x-npz"
            be = self.server.backend
            sample = getattr(be, "sample_chunks", None) or be.sample_actions
            return self._call(lambda: sample(obs, instr, k, rng), answer)
        if self.path == "/select":
            be = self.server.backend
            if not hasattr(be, "select"):
                return self._error(404, f"policy {self.server.metadata['name']!r} takes no select "
                                        f"(metadata 'select' is false)")
            try:
                index = wire.parse_select_request(wire.decode(body))
            except wire.ProtocolError as e:
                return self._error(400, f"select: {e}")

            def chosen(actions):
                if actions is None:                   # execute the candidate as sampled
                    return wire.encode({}), "application/x-npz"
                a = wire.check_actions(np.asarray(actions)[:, None], len(index), 1, "select")
                return wire.encode({"actions": a[:, 0]}), "application/x-npz"
            return self._call(lambda: be.select(index), chosen)
        self._error(404, f"unknown path {self.path!r}; GET /metadata, POST /reset, POST /sample, "
                         f"POST /select")

    def _call(self, fn, answer):
        try:
            with self.server.lock:
                body, ctype = answer(fn())
        except Exception as e:                    # the policy's failure goes back to the client
            if self.server.verbose:
                traceback.print_exc()
            return self._error(500, f"{type(e).__name__}: {e}")
        self._reply(200, body, ctype)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class PolicyServer:
    """Serve ``backend`` at ``http://host:port`` (``port=0``: a free port, see :attr:`url`).

    ``start()`` serves from a background thread (tests, notebooks), ``serve_forever()`` blocks (a
    server process); ``stop()`` closes the socket. Also a context manager."""

    def __init__(self, backend, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self._srv = _Server((host, port), _Handler)
        self._srv.backend, self._srv.verbose = backend, verbose
        self._srv.lock, self._srv.stopping = threading.Lock(), False
        self._srv.metadata = backend_metadata(backend)
        self._thread = None

    @property
    def url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "PolicyServer":
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True,
                                        name=f"policy-server {self.url}")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._srv.serve_forever()

    def run(self, name: str) -> int:
        """Announce ``serving {name} at URL`` on stdout (the line :class:`vgps.remote.ServerProcess`
        reads), serve until Ctrl-C, close; exit status 0."""
        print(f"serving {name} at {self.url}  (Ctrl-C stops)", flush=True)
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        self._srv.stopping = True
        if self._thread is not None:
            self._srv.shutdown()
            self._thread.join()
            self._thread = None
        self._srv.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

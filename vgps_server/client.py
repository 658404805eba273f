"""The client side of the policy protocol: :class:`PolicyClient` (standard library and numpy).

Every failure of the remote end is one :class:`RemotePolicyError` whose message says what happened
and where: no server at the address, no answer within the timeout, the connection closed mid-request
(the server died), an error the server reported (its message), or an answer that is not a valid
message. Nothing waits forever: every socket operation has the client's timeout.
"""
from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import numpy as np

from vgps_server import wire


class RemotePolicyError(RuntimeError):
    """The policy server could not be reached or answered with an error."""


class PolicyClient:
    """``PolicyClient("http://127.0.0.1:8000", timeout=30)``: ``metadata()``, ``reset(B)``,
    ``sample_actions(observations, instructions, num_samples, rng uint32[B, 2]) -> [B, K, (H,) 7]``.
    One keep-alive connection; after a dropped connection the request is sent once more on a fresh
    one (requests are deterministic in their keys, so a repeat is harmless)."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlsplit(url if "//" in url else f"http://{url}")
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError(f"policy server address must look like http://HOST:PORT, got {url!r}")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url, self.host, self.port, self.timeout = f"http://{u.hostname}:{u.port}", u.hostname, \
            u.port, float(timeout)
        self._conn = None
        self._meta = None

    # -- transport ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _roundtrip(self, method, path, body, ctype):
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Content-Type": ctype} if body is not None else {}
        self._conn.request(method, path, body=body, headers=headers)
        r = self._conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()

    def _request(self, method: str, path: str, body: bytes | None = None,
                 ctype: str = "application/x-npz"):
        what = f"{method} {self.url}{path}"
        for attempt in (0, 1):
            try:
                status, rtype, data = self._roundtrip(method, path, body, ctype)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if attempt:
                    raise RemotePolicyError(f"{what}: the server closed the connection without "
                                            f"answering ({type(e).__name__}); did it die?") from None
            except ConnectionRefusedError:
                self.close()
                raise RemotePolicyError(f"{what}: no policy server at {self.url} (connection "
                                        f"refused); start one, e.g. `python -m vgps_server ...`") \
                    from None
            except socket.timeout:
                self.close()                 # a late answer must not be read as the next one
                raise RemotePolicyError(f"{what}: no answer within {self.timeout:g} s") from None
            except OSError as e:
                self.close()
                raise RemotePolicyError(f"{what}: {type(e).__name__}: {e}") from None
        if status != 200:
            try:
                msg = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                msg = data[:200].decode(errors="replace")
            raise RemotePolicyError(f"{what}: server answered {status}: {msg}")
        return rtype, data

    # -- protocol -------------------------------------------------------------------------------
    def metadata(self) -> dict:
        if self._meta is None:
            _, data = self._request("GET", "/metadata")
            try:
                meta = json.loads(data)
            except ValueError:
                raise RemotePolicyError(f"{self.url}/metadata is not JSON: {data[:100]!r}") from None
            if meta.get("protocol") != wire.PROTOCOL:
                raise RemotePolicyError(f"{self.url} speaks {meta.get('protocol')!r}, this client "
                                        f"{wire.PROTOCOL!r}")
            self._meta = meta
        return self._meta

    def reset(self, batch_size: int) -> None:
        self._request("POST", "/reset", wire.encode_json({"batch_size": int(batch_size)}),
                      "application/json")

    def sample_actions(self, observations: dict, instructions, num_samples: int, rng) -> np.ndarray:
        rng = np.asarray(rng)
        _, data = self._request("POST", "/sample",
                                wire.sample_request(observations, instructions, num_samples, rng))
        try:
            msg = wire.decode(data)
            if "actions" not in msg:
                raise wire.ProtocolError(f"answer lacks 'actions' (has {sorted(msg)})")
            return wire.check_actions(msg["actions"], len(instructions), int(num_samples),
                                      f"answer of {self.url}")
        except wire.ProtocolError as e:
            raise RemotePolicyError(f"POST {self.url}/sample: {e}") from None

    def select(self, index) -> np.ndarray | None:
        """Tell the server which candidate each row executes (``index [B]``); returns the action
        to execute instead, ``[B, 7]``, or None (execute the candidate as sampled)."""
        index = np.asarray(index, np.int64)
        _, data = self._request("POST", "/select", wire.encode({"index": index}))
        try:
            msg = wire.decode(data)
            if "actions" not in msg:
                return None
            return wire.check_actions(msg["actions"][:, None], len(index), 1,
                                      f"answer of {self.url}")[:, 0]
        except wire.ProtocolError as e:
            raise RemotePolicyError(f"POST {self.url}/select: {e}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Steer a policy that runs in another process: :class:`RemotePolicy` and the V-GPS proxy.

A real generalist lives in its own environment (Octo: Python 3.10, jax 0.4.20; OpenVLA: torch;
RT-1-X: TF 2.15) and serves the policy protocol with :mod:`vgps_server` (standard library and
numpy only). Here:

- :class:`RemotePolicy` is a client that implements our :class:`~vgps.policies.base.Policy`, so
  ``ValueGuidedPolicy(RemotePolicy(url), critic)`` steers it unchanged. It is also an *agent*
  (``act``) that executes the server's own action, which is how a robot loop or the harness runs a
  served (or proxied) policy.
- :class:`SteeringBackend` serves a :class:`~vgps.steer.ValueGuidedPolicy`: ``vgps steer-proxy
  --policy URL --critic DIR`` answers each request with the steered action, so an existing client
  gets V-GPS by changing one address. A request for one sample returns
  ``ValueGuidedPolicy.act`` under the request's keys, exactly the in-process action.

Keys travel as raw ``uint32[B, 2]`` (one per row), so a served policy draws from the same keys as
in process and its actions are identical.
"""
from __future__ import annotations

import numpy as np

from vgps.policies.adapters import BackendPolicy
from vgps.policies.base import ACTION_DIM
from vgps_server import PolicyClient, PolicyServer, RemotePolicyError  # noqa: F401 (re-exported)


class RemotePolicy(BackendPolicy):
    """The policy served at ``url`` as a :class:`~vgps.policies.base.Policy` (and an agent).

    ``sample_actions -> [B, K, 7]`` (the first action of each chunk when the server returns chunks
    ``[B, K, H, 7]``); ``sample_chunks -> [B, K, H, 7]`` (``ValueGuidedPolicy(...,
    exec_horizon=H)`` executes the chosen chunk); ``act(obs, instructions, rng)`` → the server's
    single sample ``[B, 7]``. Errors of the remote end raise
    :class:`~vgps_server.RemotePolicyError`. ``embodiment`` (e.g. ``"widowx"``,
    ``"google_robot"``) is sent as the observation field ``embodiment`` when the observations
    carry none: servers that un-normalise per robot (the Octo server) choose their statistics by
    it."""

    def __init__(self, url: str, timeout: float = 30.0, name: str | None = None,
                 embodiment: str | None = None):
        client = PolicyClient(url, timeout=timeout)
        self.metadata = client.metadata()
        if int(self.metadata.get("action_dim", ACTION_DIM)) != ACTION_DIM:
            raise RemotePolicyError(f"{url} serves {self.metadata['action_dim']}-dim actions; "
                                    f"V-GPS steers {ACTION_DIM}-dim ones")
        super().__init__(client, name or str(self.metadata.get("name", url)), embodiment)
        self.client, self.url = client, client.url

    def sample_chunks(self, observations, instructions, num_samples, rng) -> np.ndarray:
        a = self.client.sample_actions(*self.request(observations, instructions, num_samples, rng))
        return a if a.ndim == 4 else a[:, :, None]

    def sample_actions(self, observations, instructions, num_samples, rng) -> np.ndarray:
        return self.sample_chunks(observations, instructions, num_samples, rng)[:, :, 0]

    def select(self, index) -> np.ndarray | None:
        """``POST /select`` when the server takes the steering layer's choice (metadata
        ``select``), else None without a round trip."""
        if not self.metadata.get("select"):
            return None
        return self._executed(self.client.select(index), len(index))

    def act(self, observations, instructions, rng):
        a = self.sample_actions(observations, instructions, 1, rng)[:, 0]
        executed = self.select(np.zeros(len(a), np.int64))
        return (a if executed is None else executed), {}

    def close(self) -> None:
        self.client.close()


class SteeringBackend:
    """A :class:`~vgps.steer.ValueGuidedPolicy` as a server backend (the V-GPS proxy).

    One sample per row: ``steered.act`` under the request's keys (the in-process action, chunks
    executed open loop across requests when ``exec_horizon > 1``); ``K > 1`` samples:
    ``steered.sample_actions`` (independent steered draws)."""

    def __init__(self, steered, info: dict | None = None):
        self.steered, self.info = steered, dict(info or {})
        self.name = steered.name

    def metadata(self) -> dict:
        return {"steered_by": "vgps", "K": self.steered.K, "beta": self.steered.beta,
                "mode": self.steered.mode, **self.info}

    def reset(self, batch_size: int) -> None:
        self.steered.reset(batch_size)

    def sample_actions(self, observations, instructions, num_samples, rng):
        if num_samples == 1:
            return self.steered.act(observations, instructions, rng)[0][:, None]
        return self.steered.sample_actions(observations, instructions, num_samples, rng)


def steer_proxy(policy_url: str, critic_dir, *, K: int = 10, beta: float = 1.0, host="127.0.0.1",
                port: int = 0, timeout: float = 30.0, language_encoder=None) -> PolicyServer:
    """A (not yet started) :class:`~vgps_server.PolicyServer` answering with the action V-GPS
    chooses among ``K`` samples of the policy at ``policy_url``, scored by the critic in
    ``critic_dir``."""
    from vgps.agents.critic import load_critic
    from vgps.steer import ValueGuidedPolicy
    if language_encoder is None:
        from vgps.data.language import get_encoder
        language_encoder = get_encoder()
    remote = RemotePolicy(policy_url, timeout=timeout)
    steered = ValueGuidedPolicy(remote, load_critic(critic_dir), K=K, beta=beta,
                                language_encoder=language_encoder)
    info = {"policy_url": remote.url, "critic": str(critic_dir),
            "upstream": remote.metadata}
    return PolicyServer(SteeringBackend(steered, info), host=host, port=port)


class ServerProcess:
    """A policy server or proxy in a child process: ``with ServerProcess(cmd) as srv: srv.url``.

    ``cmd`` must print ``serving ... at http://HOST:PORT`` on its first line of stdout (``vgps
    serve-policy``, ``vgps steer-proxy``, ``python -m vgps_server``; pass ``--port 0`` for a free
    port). A child that exits first, or prints nothing within ``timeout`` seconds, raises
    :class:`~vgps_server.RemotePolicyError` with the tail of its stderr; leaving the block kills it.
    """

    def __init__(self, cmd: list[str], timeout: float = 600.0, env: dict | None = None, cwd=None):
        import selectors
        import subprocess
        import tempfile
        self.cmd = [str(c) for c in cmd]
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     env=env, cwd=cwd)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = self.proc.stdout.readline() if sel.select(timeout) else ""
        sel.close()
        if " at http://" not in line:
            self.stop()
            self._err.seek(0)
            tail = self._err.read().decode(errors="replace")[-2000:]
            raise RemotePolicyError(f"{' '.join(self.cmd)} did not start a server within "
                                    f"{timeout:g} s (stdout {line.strip()!r}); stderr:\n{tail}")
        self.url = line.split(" at ")[1].split()[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self._err.close()

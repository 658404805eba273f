"""The policy-server protocol (vgps_server) and steering a served policy (vgps.remote).

A served policy is the in-process policy: same keys, same actions, bit for bit, whether it is
sampled directly, steered through ValueGuidedPolicy(RemotePolicy) or steered by the proxy. Every
way the remote end can fail (no server, no answer, a server that dies, malformed messages, wrong
shapes) is one clear RemotePolicyError, bounded in time."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests._steer_fakes import HashEncoder
from tests.test_eval_rng import CONFIGS, D, INSTR, WalkEnv, _bc, _critic, _obs
from vgps.eval.harness import Evaluator, make_evaluator, random_policy_bounds
from vgps.policies.base import RandomPolicy
from vgps.policies.base import raw_keys
from vgps.remote import RemotePolicy, SteeringBackend
from vgps.steer import ValueGuidedPolicy
from vgps_server import PolicyClient, PolicyServer, ProtocolError, RemotePolicyError, wire


def _keys(seed, b):
    return jax.random.split(jax.random.PRNGKey(seed), b)


# ------------------------------------------------------------------------------------- wire
def test_messages_keep_dtype_shape_and_strings_and_never_unpickle():
    msg = {"obs/image": np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
           "obs/state": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
           "instructions": np.asarray(["put the ü carrot on the plate", ""], np.str_),
           "rng": np.asarray([[1, 2], [3, 2**32 - 1]], np.uint32)}
    out = wire.decode(wire.encode(msg))
    assert sorted(out) == sorted(msg)
    for k in msg:
        assert out[k].dtype == msg[k].dtype and out[k].shape == msg[k].shape
        np.testing.assert_array_equal(out[k], msg[k])
    with pytest.raises(ProtocolError, match="object arrays"):
        wire.encode({"x": np.asarray([{"a": 1}], dtype=object)})
    import pickle
    with pytest.raises(ProtocolError, match="not a valid .npz"):
        wire.decode(pickle.dumps({"a": 1}))
    with pytest.raises(ProtocolError, match="not a valid .npz"):
        wire.decode(wire.encode(msg)[:100])                        # cut in transit


@pytest.mark.parametrize("edit,msg", [
    (lambda m: m.pop("rng"), "lacks the field 'rng'"),
    (lambda m: m.pop("obs/state"), "no observation"),
    (lambda m: m.update(instructions=np.asarray(["a"], np.str_)), r"must be 3 strings"),
    (lambda m: m.update(num_samples=np.asarray(0)), "integer >= 1"),
    (lambda m: m.update(num_samples=np.asarray(2.0)), "integer >= 1"),
    (lambda m: m.update(rng=np.zeros((3, 2), np.int64)), r"uint32\[3, 2\]"),
    (lambda m: m.update({"obs/image": np.zeros((2, 4, 4, 3), np.uint8)}), "one batch size"),
])
def test_malformed_sample_requests_name_the_field(edit, msg):
    m = wire.decode(wire.sample_request(_obs(3), INSTR[:3], 2, raw_keys(_keys(0, 3), 3, "t")))
    wire.parse_sample_request(dict(m))                           # the unedited request is valid
    edit(m)
    with pytest.raises(ProtocolError, match=msg):
        wire.parse_sample_request(m)


# ------------------------------------------------------------- a served policy is the policy
@pytest.mark.parametrize("kind", ["diffusion", "tokens", "random"])
def test_served_policy_returns_the_in_process_actions_bit_for_bit(kind):
    pol = RandomPolicy() if kind == "random" else _bc(kind)
    obs, keys = _obs(5), _keys(3, 5)
    with PolicyServer(pol) as srv:
        remote = RemotePolicy(srv.url)
        assert remote.name == pol.name and remote.metadata["protocol"] == wire.PROTOCOL
        got = remote.sample_actions(obs, INSTR, 4, keys)
        typed = remote.sample_actions(obs, INSTR, 4, jax.random.wrap_key_data(keys))
    want = np.asarray(pol.sample_actions(obs, INSTR, 4, keys))
    assert got.dtype == np.float32 and got.shape == (5, 4, 7)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(typed, want)


def test_chunks_are_served_and_executed_like_in_process():
    pol = _bc("diffusion", chunk=3)
    obs, keys = _obs(4), _keys(4, 4)
    with PolicyServer(pol) as srv:
        remote = RemotePolicy(srv.url)
        chunks = remote.sample_chunks(obs, INSTR[:4], 2, keys)
        np.testing.assert_array_equal(chunks, pol.sample_chunks(obs, INSTR[:4], 2, keys))
        assert chunks.shape == (4, 2, 3, 7)
        local = ValueGuidedPolicy(pol, _critic(), K=3, language_encoder=HashEncoder(D), exec_horizon=3)
        served = ValueGuidedPolicy(remote, _critic(), K=3, language_encoder=HashEncoder(D), exec_horizon=3)
        for v in (local, served):
            v.reset(4)
        for t in range(5):
            k = _keys(10 + t, 4)
            a, ia = local.act(obs, INSTR[:4], k)
            b, ib = served.act(obs, INSTR[:4], k)
            np.testing.assert_array_equal(a, b)
            assert ia["replanned"] == ib["replanned"] == (t % 3 == 0)


def test_steering_a_served_policy_and_the_proxy_match_in_process_steering_episode_for_episode(tmp_path):
    """The harness runs 2 configs x 24 episodes three ways: in process; ValueGuidedPolicy around a
    RemotePolicy; a client of the V-GPS proxy (policy server -> proxy -> client)."""
    pol = _bc("diffusion")
    low, high = random_policy_bounds()
    with PolicyServer(pol) as psrv:
        results = {}
        for way in ("in process", "steer remote", "proxy"):
            log = {}
            make_env = lambda task: WalkEnv(task, log)  # noqa: E731,B023
            policy = pol if way == "in process" else RemotePolicy(psrv.url)
            for cfg in CONFIGS[:1] + [CONFIGS[3]]:
                if way != "proxy":
                    ev = make_evaluator(tmp_path / way, "serve", {"diffusion": policy}, critic=_critic(),
                                        encoder=HashEncoder(D), make_env=make_env, num_envs=5)
                    df = ev.run(cfg, ["t1"], [0], episodes=24)
                else:
                    steered = ValueGuidedPolicy(RemotePolicy(psrv.url), _critic(), K=cfg.K, beta=cfg.beta,
                                                mode=cfg.method, language_encoder=HashEncoder(D),
                                                random_low=low, random_high=high)
                    with PolicyServer(SteeringBackend(steered)) as proxy:
                        client = RemotePolicy(proxy.url)
                        assert client.metadata["steered_by"] == "vgps" and client.metadata["K"] == cfg.K
                        ev = Evaluator(make_env, lambda c: client, tmp_path / "proxy.sqlite",  # noqa: B023
                                       num_envs=5)
                        df = ev.run(cfg, ["t1"], [0], episodes=24)
                df["trajectory"] = [log[(t, s)].hexdigest() for t, s in zip(df["task"], df["env_seed"])]
                results[(way, cfg.method)] = df.sort_values("episode").reset_index(drop=True)
    cols = ["episode", "env_seed", "success", "steps", "trajectory"]
    for method in ("vgps", "random_policy"):
        ref = results[("in process", method)]
        assert ref["trajectory"].nunique() == 24 and 0 < ref["success"].mean() < 1
        for way in ("steer remote", "proxy"):
            pd_eq = ref[cols].equals(results[(way, method)][cols])
            assert pd_eq, f"{way} ({method}) differs from in-process steering"


# ----------------------------------------------------------------------------- failures
class _Backend:
    name = "fake-backend"

    def __init__(self, fn):
        self.fn = fn

    def reset(self, batch_size):
        pass

    def sample_actions(self, obs, instr, k, rng):
        return self.fn(len(instr), k)


def _sample(url, timeout=5.0, b=2, k=3):
    return PolicyClient(url, timeout=timeout).sample_actions(
        _obs(b), INSTR[:b], k, raw_keys(_keys(0, b), b, "t"))


@pytest.mark.parametrize("fn,msg", [
    (lambda b, k: np.zeros((b, k, 6)), r"shape \(2, 3, 6\), expected \[B, K, 7\]"),
    (lambda b, k: np.zeros((b + 1, k, 7)), r"shape \(3, 3, 7\)"),
    (lambda b, k: np.full((b, k, 7), np.nan), "non-finite"),
    (lambda b, k: 1 / 0, "ZeroDivisionError"),
])
def test_wrong_shapes_and_policy_errors_come_back_as_clear_errors(fn, msg):
    with PolicyServer(_Backend(fn)) as srv:
        with pytest.raises(RemotePolicyError, match=f"answered 500: .*{msg}"):
            _sample(srv.url)
        # the server keeps serving after a failed request
        srv._srv.backend = _Backend(lambda b, k: np.zeros((b, k, 7)))
        assert _sample(srv.url).shape == (2, 3, 7)


def test_malformed_http_requests_get_400_or_404_with_a_message():
    with PolicyServer(RandomPolicy()) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", int(srv.url.rsplit(":", 1)[1]), timeout=5)
        for method, path, body, status, text in [
                ("POST", "/sample", b"not an npz", 400, "not a valid .npz"),
                ("POST", "/reset", b"{}", 400, "batch_size"),
                ("POST", "/reset", b'{"batch_size": 0}', 400, "integer >= 1"),
                ("GET", "/nowhere", None, 404, "unknown path"),
                ("POST", "/sample", wire.encode({"obs/state": np.zeros((1, 2))}), 400, "lacks the field")]:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            assert r.status == status and text in json.loads(r.read())["error"], (path, body)


def test_no_server_and_no_answer_fail_fast_with_the_address():
    with PolicyServer(RandomPolicy()) as srv:
        url = srv.url
    with pytest.raises(RemotePolicyError, match=f"no policy server at {url}"):
        _sample(url)
    slow = _Backend(lambda b, k: time.sleep(3) or np.zeros((b, k, 7)))
    with PolicyServer(slow) as srv:
        t0 = time.monotonic()
        with pytest.raises(RemotePolicyError, match=r"no answer within 0.3 s"):
            _sample(srv.url, timeout=0.3)
        assert time.monotonic() - t0 < 2.5
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        PolicyClient("octo-small")


def test_a_server_process_that_dies_mid_episode_is_an_error_not_a_hang():
    proc = subprocess.Popen([sys.executable, "-m", "vgps.cli", "serve-policy", "--policy", "random",
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving policy 'random' at http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split()[0]
        remote = RemotePolicy(url, timeout=5)
        v = ValueGuidedPolicy(remote, mode="policy")
        v.reset(2)
        a, _ = v.act(_obs(2), INSTR[:2], _keys(0, 2))              # the episode is under way
        np.testing.assert_array_equal(a, RandomPolicy().sample_actions(
            _obs(2), INSTR[:2], 1, jax.vmap(lambda k: jax.random.split(k, 2))(_keys(0, 2))[:, 0])[:, 0])
        proc.kill()
        proc.wait(10)
        t0 = time.monotonic()
        with pytest.raises(RemotePolicyError, match="connection refused|closed the connection"):
            v.act(_obs(2), INSTR[:2], _keys(1, 2))
        assert time.monotonic() - t0 < 5
    finally:
        proc.kill()


def test_a_stopped_in_process_server_drops_open_connections():
    srv = PolicyServer(RandomPolicy()).start()
    client = PolicyClient(srv.url, timeout=5)
    client.reset(2)                                            # a keep-alive connection is open
    srv.stop()
    with pytest.raises(RemotePolicyError):
        client.reset(2)


def test_the_server_package_imports_without_jax_tensorflow_or_vgps():
    code = ("import sys, vgps_server, vgps_server.wire, vgps_server.client; "
            "heavy = [m for m in ('jax', 'tensorflow', 'vgps', 'flax', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_harness_tells_per_robot_policies_which_robot_each_row_is():
    """Environments that report info["embodiment"] at reset (the embedded suite, the SIMPLER
    wrapper) put it into the observation batch, so a served Octo un-normalises each row with its
    robot's statistics in a mixed batch."""
    from vgps.eval.harness import run_lockstep

    class Env(WalkEnv):
        def reset(self, *, seed):
            o, info = super().reset(seed=seed)
            return o, {**info, "embodiment": "google_robot" if seed % 2 else "widowx"}

    class Agent:
        seen = []

        def reset(self, b):
            pass

        def act(self, obs, instr, rng):
            self.seen.append(list(obs["embodiment"]))
            return np.zeros((len(instr), 7), np.float32), {}
    envs = [Env("t", {}) for _ in range(4)]
    run_lockstep(Agent(), envs, [0, 1, 2])
    assert Agent.seen[0] == ["widowx", "google_robot", "widowx", "widowx"]   # padded slot: row 0's


# ------------------------------------------- select: the steering layer's choice goes back
class _ChoosingBackend:
    """A stateful backend that wants to know what was chosen (as Octo under the released V-GPS
    scoring): it remembers its candidates and answers ``select`` with the chosen one + 100 per
    earlier selection of that row, so the executed action shows that the choice arrived."""
    name = "chooser"

    def reset(self, batch_size):
        self.last, self.count = None, np.zeros(batch_size)

    def sample_actions(self, observations, instructions, num_samples, rng):
        a = np.asarray(RandomPolicy().sample_actions(observations, instructions, num_samples, rng))
        self.last = a
        return a

    def select(self, index):
        out = self.last[np.arange(len(index)), index].copy()
        out[:, 0] += 100 * self.count
        self.count += 1
        return out


def test_select_reaches_the_backend_in_process_served_and_through_the_proxy():
    from vgps.policies.adapters import BackendPolicy
    obs = _obs(3)
    want = None
    with PolicyServer(_ChoosingBackend()) as srv:
        remote = RemotePolicy(srv.url)
        assert remote.metadata["select"] is True
        for policy in (BackendPolicy(_ChoosingBackend(), "chooser"), remote):
            steered = ValueGuidedPolicy(policy, _critic(), K=4, beta=0.0, language_encoder=HashEncoder(D))
            steered.reset(3)
            got = []
            for t in range(3):
                a, info = steered.act(obs, INSTR[:3], _keys(t, 3))
                chosen = info["candidates"][np.arange(3), info["index"]]
                np.testing.assert_array_equal(a[:, 1:], chosen[:, 1:])          # the chosen candidate,
                np.testing.assert_allclose(a[:, 0], chosen[:, 0] + 100 * t)     # as the backend answered
                got.append(a)
            want = got if want is None else want
            np.testing.assert_array_equal(np.stack(got), np.stack(want))         # in process = served
    with PolicyServer(RandomPolicy()) as srv:                                    # no select: no call
        plain = RemotePolicy(srv.url)
        assert plain.metadata["select"] is False and plain.select(np.zeros(3, np.int64)) is None
        status, body = _post(srv.url, "/select", wire.encode({"index": np.zeros(3, np.int64)}))
        assert status == 404 and "takes no select" in json.loads(body)["error"]


def test_malformed_select_requests_name_the_field():
    with PolicyServer(_ChoosingBackend()) as srv:
        for msg, text in (({}, "lacks the field 'index'"), ({"index": np.asarray([0.5])}, "integer >= 0"),
                          ({"index": np.asarray([-1])}, "integer >= 0")):
            status, body = _post(srv.url, "/select", wire.encode(msg))
            assert status == 400 and text in json.loads(body)["error"]


def _post(url, path, body):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/x-npz"})
    r = conn.getresponse()
    out = (r.status, r.read())
    conn.close()
    return out

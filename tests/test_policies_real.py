"""Steer real upstream policy code served from its own environment by ours (jax 0.10, numpy 2), end
to end on the embedded suite: Octo (octo-models/octo at 241fb35, ../shared/external/octo; Python
3.10, jax 0.4.20, flax 0.7.5, TF 2.15, numpy 1.24: scripts/policy_env.sh octo) and RT-1-X's
tf_agents SavedModel path (TF 2.15, tf_agents 0.19: scripts/policy_env.sh rt1x), and the OpenVLA
backend on OpenVLA's pinned torch 2.2.0 / transformers 4.40.1 (scripts/policy_env.sh openvla).

The model is a randomly initialised tiny OctoModel built from Octo's own modules (nothing can be
downloaded here); every array goes through the real ``OctoModel.sample_actions``. tests/octo_checks.py
(run inside the Octo environment) checks the server's history, pad mask, un-normalisation and
temporal ensembling against direct calls of that code. For RT-1-X, a tiny deterministic tf_agents
policy with RT-1-X's specs is saved by PolicySaver and loaded as upstream loads the released
checkpoint (tests/rt1x_checks.py). OpenVLA's model code is not installable here (it ships with the
checkpoint), so its backend runs on a tiny stand-in with OpenVLA's call surface whose sampling is
transformers' own ``generate`` (tests/openvla_checks.py). Runs under ``make test-policies`` (part of
``make test``), which builds the environments and sets VGPS_OCTO_PYTHON / VGPS_RT1X_PYTHON /
VGPS_OPENVLA_PYTHON."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

from tests._steer_fakes import HashEncoder
from vgps.eval.harness import Evaluator, RunConfig, make_evaluator
from vgps.remote import RemotePolicy, SteeringBackend
from vgps.steer import ValueGuidedPolicy
from vgps_server import PolicyServer

ROOT = Path(__file__).resolve().parents[1]
OCTO_PY = os.environ.get("VGPS_OCTO_PYTHON")
RT1X_PY = os.environ.get("VGPS_RT1X_PYTHON")
OPENVLA_PY = os.environ.get("VGPS_OPENVLA_PYTHON")
needs_octo = pytest.mark.skipif(not OCTO_PY, reason="needs the Octo environment: run `make test-policies`")
needs_rt1x = pytest.mark.skipif(not RT1X_PY, reason="needs the RT-1-X environment: run `make test-policies`")
needs_openvla = pytest.mark.skipif(not OPENVLA_PY, reason="needs the OpenVLA environment: run `make test-policies`")
TASKS = ["widowx_spoon_on_towel", "widowx_carrot_on_plate"]


def _policy_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "NPY_", "VGPS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_checks(python: str, script: str, passed: str) -> None:
    """Run ``tests/<script>`` in a policy's own environment; it must exit 0 and print ``passed``."""
    out = subprocess.run([python, str(ROOT / "tests" / script)], capture_output=True, text=True,
                         timeout=900, env=_policy_env(), cwd=ROOT)
    assert out.returncode == 0 and passed in out.stdout, out.stdout + out.stderr[-3000:]


@needs_octo
def test_octo_server_matches_direct_calls_of_the_real_sample_actions():
    _run_checks(OCTO_PY, "octo_checks.py", "all Octo checks passed")


@pytest.fixture(scope="module")
def octo_url():
    proc = subprocess.Popen([OCTO_PY, "-m", "vgps_server", "octo-tiny", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_policy_env(), cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert "serving policy 'octo-tiny' at http://" in line, line
        yield line.split(" at ")[1].split()[0]
    finally:
        proc.kill()
        proc.wait(30)


def _critic():
    from vgps.agents.critic import Critic
    from vgps.config import CriticConfig
    from vgps.data.normalize import ActionNormalizer
    from vgps.nets.critic import CriticNet
    cfg = CriticConfig(hidden_dims=(32, 32), encoder_dims=(32, 32), embedding_dim=32)
    params = CriticNet(cfg).init(jax.random.PRNGKey(1), {"state": np.zeros((1, 59), np.float32)},
                                 np.zeros((1, 512), np.float32), np.zeros((1, 7), np.float32))
    acts = np.random.default_rng(0).normal(0, 0.02, (64, 7)).astype(np.float32)
    return Critic(cfg, params, ActionNormalizer.fit(acts))


@needs_octo
def test_steer_the_real_octo_in_process_and_through_the_proxy_same_episodes(octo_url, tmp_path):
    octo = RemotePolicy(octo_url, timeout=120, embodiment="widowx")
    meta = octo.metadata
    assert meta["name"] == "octo-tiny" and meta["window"] == 2 and meta["temporal_ensembling"]
    assert meta["unnorm_keys"]["widowx"] == "bridge_dataset"
    critic, enc = _critic(), HashEncoder(512)
    cfg = RunConfig("octo-tiny", "vgps", 4, 1.0)
    ev = make_evaluator(tmp_path / "direct", "octo", {"octo-tiny": octo}, critic=critic, encoder=enc,
                        num_envs=3, render=True)
    base = ev.run(RunConfig("octo-tiny", "policy"), TASKS, [0], episodes=3)
    steered = ev.run(cfg, TASKS, [0], episodes=3)
    assert len(base) == len(steered) == 6 and (steered["steps"] > 0).all()
    proxy_policy = ValueGuidedPolicy(RemotePolicy(octo_url, timeout=120, embodiment="widowx"), critic,
                                     K=4, beta=1.0, language_encoder=enc)
    import vgps.envs as envs
    with PolicyServer(SteeringBackend(proxy_policy)) as proxy:
        client = RemotePolicy(proxy.url, timeout=120)
        via = Evaluator(lambda task: envs.make(task, render=True), lambda c: client,
                        tmp_path / "proxy.sqlite", num_envs=3).run(cfg, TASKS, [0], episodes=3)
    cols = ["task", "episode", "env_seed", "success", "steps"]
    a, b = (d.sort_values(["task", "episode"]).reset_index(drop=True)[cols] for d in (steered, via))
    assert a.equals(b), f"proxy differs from in-process steering:\n{a}\n{b}"


@needs_octo
def test_steered_actions_are_among_the_octo_samples_and_differ_from_the_base(octo_url):
    import vgps.envs as envs
    env = envs.make(TASKS[0], render=True)
    obs, info = env.reset(seed=3)
    batch = {k: v[None] for k, v in obs.items()}
    octo = RemotePolicy(octo_url, timeout=120, embodiment="widowx")
    v = ValueGuidedPolicy(octo, _critic(), K=8, beta=0.0, language_encoder=HashEncoder(512))
    v.reset(1)
    a, inf = v.act(batch, [info["instruction"]], jax.random.split(jax.random.PRNGKey(0), 1))
    cand = inf["candidates"][0]
    assert cand.shape == (8, 7) and len({c.tobytes() for c in cand}) == 8      # K distinct samples
    assert np.array_equal(a[0], cand[inf["index"][0]]) and inf["index"][0] == np.argmax(inf["q"][0])
    assert set(np.unique(cand[:, -1])) <= {0.0, 1.0}                           # binarised gripper


# ---------------------------------------------------------------------------------------- RT-1-X
@needs_rt1x
def test_rt1x_server_on_a_real_tf_agents_savedmodel():
    _run_checks(RT1X_PY, "rt1x_checks.py", "all RT-1-X checks passed")


@needs_rt1x
def test_steer_rt1x_greedy_decoding_leaves_nothing_to_choose(tmp_path):
    """RT-1-X's SavedModel decodes greedily, so its K samples are identical and V-GPS executes the
    base policy's action: the steered episodes equal the base episodes, step for step."""
    from vgps.remote import ServerProcess
    sm = tmp_path / "rt1x_savedmodel"
    subprocess.run([RT1X_PY, str(ROOT / "tests" / "rt1x_checks.py"), "--save", str(sm)], check=True,
                   capture_output=True, timeout=600, env=_policy_env(), cwd=ROOT)
    with ServerProcess([RT1X_PY, "-m", "vgps_server", "rt1x", "--checkpoint", sm, "--hash-embedding",
                        "--port", "0"], env=_policy_env(), cwd=ROOT) as srv:
        rt1 = RemotePolicy(srv.url, timeout=120, embodiment="widowx")
        assert rt1.metadata["greedy"] is True
        ev = make_evaluator(tmp_path / "ev", "rt1x", {"rt1x": rt1}, critic=_critic(), encoder=HashEncoder(512),
                            num_envs=3, render=True)
        base = ev.run(RunConfig("rt1x", "policy"), TASKS[:1], [0], episodes=3)
        steered = ev.run(RunConfig("rt1x", "vgps", 4, 1.0), TASKS[:1], [0], episodes=3)
    cols = ["episode", "env_seed", "success", "steps"]
    assert base[cols].reset_index(drop=True).equals(steered[cols].reset_index(drop=True))


# --------------------------------------------------------------------------------------- OpenVLA
@needs_openvla
def test_openvla_backend_on_the_pinned_torch_and_transformers():
    _run_checks(OPENVLA_PY, "openvla_checks.py", "all OpenVLA checks passed")


@needs_openvla
def test_steer_openvla_served_from_its_environment(tmp_path):
    """K samples per step are K seeded generate() calls in the server; V-GPS executes the argmax of
    the critic among them; steered episodes run end to end; --greedy leaves nothing to choose."""
    import vgps.envs as envs
    from vgps.remote import ServerProcess
    env = envs.make(TASKS[0], render=True)
    obs, info = env.reset(seed=3)
    batch = {k: v[None] for k, v in obs.items()}
    with ServerProcess([OPENVLA_PY, "-m", "vgps_server", "openvla-tiny", "--port", "0"],
                       env=_policy_env(), cwd=ROOT) as srv:
        vla = RemotePolicy(srv.url, timeout=120, embodiment="widowx")
        assert vla.metadata["name"] == "openvla-tiny" and vla.metadata["greedy"] is False
        assert vla.metadata["unnorm_keys"]["widowx"] == "bridge_orig"
        v = ValueGuidedPolicy(vla, _critic(), K=6, beta=0.0, language_encoder=HashEncoder(512))
        v.reset(1)
        a, inf = v.act(batch, [info["instruction"]], jax.random.split(jax.random.PRNGKey(0), 1))
        cand = inf["candidates"][0]
        assert cand.shape == (6, 7) and len({c.tobytes() for c in cand}) > 1
        assert np.array_equal(a[0], cand[inf["index"][0]]) and inf["index"][0] == np.argmax(inf["q"][0])
        ev = make_evaluator(tmp_path / "ev", "openvla", {"openvla-tiny": vla}, critic=_critic(),
                            encoder=HashEncoder(512), num_envs=2, render=True)
        steered = ev.run(RunConfig("openvla-tiny", "vgps", 3, 1.0), TASKS[:1], [0], episodes=2)
        assert len(steered) == 2 and (steered["steps"] > 0).all()
    with ServerProcess([OPENVLA_PY, "-m", "vgps_server", "openvla-tiny", "--greedy", "--port", "0"],
                       env=_policy_env(), cwd=ROOT) as srv:
        vla = RemotePolicy(srv.url, timeout=120, embodiment="widowx")
        assert vla.metadata["greedy"] is True
        cand = vla.sample_actions(batch, [info["instruction"]], 4, jax.random.split(jax.random.PRNGKey(0), 1))
        assert len({c.tobytes() for c in np.asarray(cand)[0]}) == 1

"""The BC stand-ins: shapes for B>1, K samples per call, determinism, msgpack round trip, subsets."""
import dataclasses

import numpy as np
import pytest

from tests._steer_fakes import HashEncoder, keys
from vgps.policies.base import Policy, validate_actions
from vgps.policies.bc import BCData, BCPolicy, PolicySpec, train_bc
from vgps.policies.zoo import SPECS, bc_data_from_episodes, rephrasings

SPEC_KW = dict(trunk_dims=(16, 16), head_dims=(16,))


def _data(n=64, s=6):
    rng = np.random.default_rng(0)
    enc = HashEncoder()
    acts = np.concatenate([0.01 * rng.standard_normal((n, 2, 6)), rng.integers(0, 2, (n, 2, 1))], -1)
    return BCData(rng.standard_normal((n, s)).astype(np.float32), rng.integers(0, 2, n),
                  enc.encode(["a", "b"]), acts.astype(np.float32)), enc


@pytest.mark.parametrize("kind,chunk", [("diffusion", 2), ("tokens", 1), ("ar_tokens", 1)])
def test_kinds(kind, chunk):
    data, enc = _data()
    spec = PolicySpec(f"t-{kind}", kind, chunk=chunk, diffusion_steps=4, **SPEC_KW)
    params, stats, losses = train_bc(spec, data, 3, 16, 1e-3, 0, verbose=False)
    pol = BCPolicy(spec, params, stats, enc)
    assert isinstance(pol, Policy)
    obs = {"state": data.state[:3]}
    a = pol.sample_actions(obs, ["a", "b", "a"], 5, keys(0, 3))
    validate_actions(a, 3, 5)
    assert set(np.unique(a[..., -1])) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, pol.sample_actions(obs, ["a", "b", "a"], 5, keys(0, 3)))
    assert not np.array_equal(a, pol.sample_actions(obs, ["a", "b", "a"], 5, keys(1, 3)))
    if kind == "diffusion":
        assert pol.sample_chunks(obs, ["a"] * 3, 5, keys(0, 3)).shape == (3, 5, chunk, 7)
    back = BCPolicy.from_bytes(spec, pol.to_bytes(), enc)
    np.testing.assert_array_equal(a, back.sample_actions(obs, ["a", "b", "a"], 5, keys(0, 3)))


def test_autoregressive_one_pass_per_sample():
    data, enc = _data()
    spec = PolicySpec("t-ar", "ar_tokens", **SPEC_KW)
    params, stats, _ = train_bc(spec, data, 2, 16, 1e-3, 0, verbose=False)
    pol = BCPolicy(spec, params, stats, enc)
    calls = []
    inner = pol._one_pass
    pol._one_pass = lambda *a: calls.append(1) or inner(*a)
    pol.sample_actions({"state": data.state[:2]}, ["a", "b"], 4, keys(0, 2))
    assert len(calls) == 4


def test_subset_and_rephrasing():
    eps = [{"action": np.zeros((5, 7), np.float32), "observation": {"state": np.zeros((5, 3), np.float32)},
            "instruction": "put carrot on plate", "metadata": {"embodiment": emb}}
           for emb in ("widowx", "google_robot")]
    spec = dataclasses.replace(SPECS["octo-small"], rephrase=True)
    d = bc_data_from_episodes({"bridge_like": eps[:1], "fractal_like": eps[1:]}, spec, HashEncoder(),
                              episodes_filter=lambda name, e: e["metadata"]["embodiment"] == "widowx")
    assert len(d) == 5 and d.actions.shape == (5, spec.chunk, 7)
    assert len(d.lang_table) == len(rephrasings("put carrot on plate")) > 1
    with pytest.raises(ValueError, match="no training episodes"):
        bc_data_from_episodes({"bridge_like": eps}, spec, HashEncoder(), lambda n, e: False)


def test_finetune_starts_from_the_policy_and_keeps_its_statistics():
    import jax

    from vgps.policies.zoo import finetune_bc
    rng = np.random.default_rng(0)
    spec = PolicySpec("tiny", "diffusion", (16,), (16,), chunk=2, diffusion_steps=4)
    acts = np.concatenate([0.02 * rng.standard_normal((64, 2, 6)), rng.integers(0, 2, (64, 2, 1))], -1)
    data = BCData(rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 2, 64),
                  rng.standard_normal((2, 512)).astype(np.float32), acts.astype(np.float32))
    params, stats, _ = train_bc(spec, data, 3, 16, 1e-3, 0, verbose=False)
    base = BCPolicy(spec, params, stats, HashEncoder())
    shifted = BCData(data.state, data.lang_idx, data.lang_table, (acts * 3).astype(np.float32))
    ft, losses = finetune_bc(base, shifted, 4, 16, 1e-3, seed=0)
    assert losses.shape == (4,) and np.isfinite(losses).all()
    for k in stats:
        assert np.array_equal(np.asarray(ft.stats[k]), np.asarray(base.stats[k]))
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(ft.params), jax.tree.leaves(base.params))]
    assert any(moved)
    again, _ = finetune_bc(base, shifted, 4, 16, 1e-3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(ft.params), jax.tree.leaves(again.params)))
    out = ft.sample_actions({"state": data.state[:2]}, ["a", "b"], 3, keys(0, 2))
    assert out.shape == (2, 3, 7)


def test_train_bc_learns_a_state_to_gripper_map():
    """The gripper command is the sign of state[0] (per instruction, the other way round for "b"):
    after training the policy imitates it, the logged losses fall, and a rerun is bit-identical."""
    import jax

    rng = np.random.default_rng(0)
    n = 256
    state = rng.standard_normal((n, 4)).astype(np.float32)
    lang = rng.integers(0, 2, n)
    grip = ((state[:, 0] > 0) ^ (lang == 1)).astype(np.float32)
    acts = np.concatenate([0.01 * rng.standard_normal((n, 1, 6)), np.repeat(grip[:, None, None], 1, 1)], -1)
    enc = HashEncoder()
    data = BCData(state, lang, enc.encode(["a", "b"]), acts.astype(np.float32))
    spec = PolicySpec("tiny", "tokens", (64, 64))
    params, stats, losses = train_bc(spec, data, 300, 64, 3e-3, 0, log_every=10, verbose=False)
    logged = losses[~np.isnan(losses)]
    assert losses.shape == (300,) and len(logged) == 31 and np.isfinite(logged).all()
    assert logged[-5:].mean() < 0.5 * logged[:2].mean()
    pol = BCPolicy(spec, params, stats, enc)
    test = rng.standard_normal((64, 4)).astype(np.float32)
    test[:, 0] = np.where(np.abs(test[:, 0]) < 0.3, 0.3 * np.sign(test[:, 0]) + 1e-3, test[:, 0])
    for instr, flip in (("a", False), ("b", True)):
        a = pol.sample_actions({"state": test}, [instr] * 64, 1, keys(0, 64))[:, 0, -1]
        assert np.mean(a == ((test[:, 0] > 0) ^ flip)) > 0.8      # chance: 0.5
    again = train_bc(spec, data, 300, 64, 3e-3, 0, log_every=10, verbose=False)[0]
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(again)))


def test_training_groups_balance_the_stand_ins_over_two_processes():
    from vgps.policies.zoo import NAMES, TRAIN_COST, training_groups
    groups = training_groups(NAMES, 2)
    assert sorted(sum(groups, [])) == sorted(NAMES) and len(groups) == 2
    assert ["openvla"] in [[n for n in g if n == "openvla"] for g in groups]
    cost = [sum(TRAIN_COST[n] * SPECS[n].steps_scale for n in g) for g in groups]
    assert max(cost) / min(cost) < 1.3
    assert training_groups(["rt1x"], 2) == [["rt1x"]] and training_groups([], 2) == []
    assert training_groups(NAMES, 1) == [list(NAMES)]


def test_ensure_trained_prints_one_line_per_stand_in_and_names_a_failed_log(tmp_path, monkeypatch, capsys):
    """The children's training logs go to files; the notebook sees one line per finished stand-in,
    and a failed group raises naming its log."""
    import subprocess
    import sys

    from vgps.policies import zoo
    monkeypatch.setenv("VGPS_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(zoo, "is_cached", lambda name, profile: name != "octo-base")
    real = subprocess.Popen

    def fake(cmd, **kw):        # a child that logs like vgps.policies.zoo, and fails for rt1x
        names = cmd[cmd.index("--profile") + 2:]
        code = "".join(f"print('[{n}] step 0 loss 1.0 (1s)'); print('{n}: ready (1 s)'); " for n in names)
        code += "import sys; sys.exit(3)" if "rt1x" in names else ""
        return real([sys.executable, "-c", code], **kw)
    monkeypatch.setattr(subprocess, "Popen", fake)
    zoo.ensure_trained("smoke", names=("octo-small", "octo-base"))
    out = capsys.readouterr().out
    assert out == "stand-in octo-base: ready (1 s)\n"
    assert "[octo-base] step 0" in (tmp_path / "smoke" / "policies" / "train-octo-base.log").read_text()
    monkeypatch.setattr(zoo, "is_cached", lambda name, profile: False)
    with pytest.raises(RuntimeError, match=r"\['rt1x'\] \(exit 3; log .*train-rt1x.log\)"):
        zoo.ensure_trained("smoke", names=("rt1x", "octo-small"))
    assert "stand-in octo-small: ready (1 s)" in capsys.readouterr().out

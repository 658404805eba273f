"""Run INSIDE the Octo environment (scripts/policy_env.sh octo), by tests/test_octo_real.py:
OctoBackend against direct calls of the real ``OctoModel.sample_actions`` (octo-models/octo).
Plain asserts (Octo's environment has no pytest); prints one line per check."""
import sys
import tempfile
import types

sys.modules.setdefault("dlimp", types.ModuleType("dlimp")).DLataset = object

import jax  # noqa: E402
import numpy as np  # noqa: E402

from vgps_server import octo  # noqa: E402

stats = {"action": {"mean": np.asarray([0.01, -0.01, 0.0, 0.0, 0.0, 0.0, 0.5], np.float32),
                    "std": np.asarray([0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 1.0], np.float32),
                    "mask": np.asarray([True] * 6 + [False])}}
google = {"action": {**stats["action"], "mean": stats["action"]["mean"] + 1.0}}
model = octo.tiny_octo(seed=1, statistics={"bridge_dataset": stats, "fractal20220817_data": google})
rng = np.random.default_rng(0)
frames = [rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8) for _ in range(4)]
instr = ["put the spoon on the towel", "stack the blocks", "put the spoon on the towel"]
keys = [np.asarray(jax.random.split(jax.random.PRNGKey(t), 3), np.uint32) for t in range(4)]
K = 3
tasks = {"language_instruction": octo.hash_embedding(instr),
         "pad_mask_dict": {"language_instruction": np.ones(3, bool)}}


def direct(window, mask, row, key, st=stats, legacy=False):
    """[K, H, 7] from the real sample_actions, un-normalised by Octo itself."""
    obs = {"image_primary": window[None], "timestep_pad_mask": mask[None]}
    if legacy:
        obs["pad_mask"] = mask[None]
    task = jax.tree_util.tree_map(lambda x: x[row:row + 1], tasks)
    a = model.sample_actions(obs, task, unnormalization_statistics=st["action"],
                             rng=jax.numpy.asarray(key), sample_shape=(K,))
    return np.asarray(a, np.float32)[:, 0]


def binarize(a):
    a = a.copy()
    a[..., -1] = (a[..., -1] > 0.5)
    return a


def check(name, ok):
    assert ok, name
    print("ok:", name)


# 1. shapes, history with the pad mask, Octo's un-normalisation (no ensembling)
be = octo.OctoBackend(model, ensemble=False, embed=octo.hash_embedding)
check("metadata: window 2, 64 px", be.window == 2 and be.image_size == 64)
outs = [be.sample_actions({"image": f}, instr, K, k) for f, k in zip(frames, keys)]
check("shape [B, K, 7] float32", all(o.shape == (3, K, 7) and o.dtype == np.float32 for o in outs))
m0, m1 = np.asarray([False, True]), np.asarray([True, True])
for t in range(4):
    for i in range(3):
        w = np.stack([frames[max(t - 1, 0)][i], frames[t][i]])
        want = binarize(direct(w, m0 if t == 0 else m1, i, keys[t][i])[:, 0])
        np.testing.assert_allclose(outs[t][i], want, rtol=0, atol=1e-6)
check("history of 2 frames, first step padded under a zero mask; un-normalised like Octo", True)
check("the history matters (same frame, other past: other actions)", not np.allclose(
    direct(np.stack([frames[0][0], frames[1][0]]), m1, 0, keys[1][0]),
    direct(np.stack([frames[1][0], frames[1][0]]), m1, 0, keys[1][0])))
dev = np.abs(np.stack(outs)[..., :6] - stats["action"]["mean"][:6]) / stats["action"]["std"][:6]
check("un-normalised: within Octo's clip of 5 std of the Bridge mean", dev.max() <= 5 + 1e-4)

# 2. the legacy pad-mask key (octo 1.0) gives the same actions at this commit
w = np.stack([frames[0][0], frames[1][0]])
np.testing.assert_array_equal(direct(w, m1, 0, keys[1][0]), direct(w, m1, 0, keys[1][0], legacy=True))
check("the legacy pad_mask key sent beside timestep_pad_mask changes nothing", True)

# 3. temporal ensembling over the action horizon (SimplerEnv's ActionEnsembler, temperature 0)
be = octo.OctoBackend(model, ensemble=True, embed=octo.hash_embedding)
ens = [be.sample_actions({"image": f}, instr, K, k) for f, k in zip(frames, keys)]
for t in range(4):
    for i in range(3):
        chunks = [direct(np.stack([frames[max(s - 1, 0)][i], frames[s][i]]), m0 if s == 0 else m1,
                         i, keys[s][i]) for s in range(t + 1)]
        preds = [chunks[s][:, t - s] for s in range(max(0, t - 3), t + 1)]    # H = 4
        np.testing.assert_allclose(ens[t][i], binarize(np.mean(preds, axis=0)), atol=1e-5)
check("temporal ensembling = mean of the predictions for this step (K chains)", True)

# 3b. the released V-GPS scoring: raw first actions as candidates, only the chosen chunk ensembled
be = octo.OctoBackend(model, ensemble=True, embed=octo.hash_embedding, scoring="raw_first")
picks = [np.asarray([t % K, (t + 1) % K, 0]) for t in range(4)]
for t in range(4):
    cand = be.sample_actions({"image": frames[t]}, instr, K, keys[t])
    executed = be.select(picks[t])
    for i in range(3):
        chunks = [direct(np.stack([frames[max(s - 1, 0)][i], frames[s][i]]), m0 if s == 0 else m1,
                         i, keys[s][i]) for s in range(t + 1)]
        np.testing.assert_allclose(cand[i], binarize(chunks[t][:, 0]), atol=1e-6)   # raw, K of them
        preds = [chunks[s][picks[s][i], t - s] for s in range(max(0, t - 3), t + 1)]  # chosen ones only
        np.testing.assert_allclose(executed[i], binarize(np.mean(preds, axis=0)), atol=1e-5)
check("raw_first: candidates = raw first actions; select ensembles the chosen chunks only", True)
check("ensembled scoring takes no choice back", octo.OctoBackend(
    model, ensemble=True, embed=octo.hash_embedding).select(np.zeros(3, np.int64)) is None)

# 4. rows are independent; the embodiment picks the un-normalisation key
be = octo.OctoBackend(model, ensemble=False, embed=octo.hash_embedding)
full = be.sample_actions({"image": frames[0]}, instr, K, keys[0])
be.reset(1)
one = be.sample_actions({"image": frames[0][2:3]}, instr[2:], K, keys[0][2:3])
check("row 2 alone = row 2 in a batch of 3", np.array_equal(one[0], full[2]))
be.reset(1)
g = be.sample_actions({"image": frames[0][:1], "embodiment": np.asarray(["google_robot"])},
                      instr[:1], K, keys[0][:1])
check("google_robot un-normalised with fractal statistics (mean + 1)",
      np.allclose(g[0, :, :6], full[0, :, :6] + 1.0, atol=1e-5))
try:
    be.sample_actions({"image": frames[0][:1], "embodiment": np.asarray(["franka"])}, instr[:1], K,
                      keys[0][:1])
    raise AssertionError("unknown embodiment accepted")
except KeyError as e:
    check("an unknown embodiment is refused by name", "franka" in str(e))

# 5. save_pretrained -> load_pretrained round trip: identical actions
from octo.model.octo_model import OctoModel  # noqa: E402
with tempfile.TemporaryDirectory() as d:
    model.save_pretrained(step=0, checkpoint_path=d)
    loaded = OctoModel.load_pretrained(d)
be2 = octo.OctoBackend(loaded, ensemble=False, embed=octo.hash_embedding)
check("a saved and reloaded checkpoint samples the same actions",
      np.array_equal(be2.sample_actions({"image": frames[0]}, instr, K, keys[0]), full))
print("all Octo checks passed")

"""Run inside the OpenVLA environment (scripts/policy_env.sh openvla: Python 3.10, torch 2.2.0,
transformers 4.40.1): the server's OpenVLA backend on transformers' own ``generate``,
``BatchFeature`` and processors. The model is ``vgps_server.openvla.tiny_openvla`` (randomly
initialised, OpenVLA's call surface; OpenVLA's own model code is not installable here).
Prints "all OpenVLA checks passed"; any failure raises."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vgps_server.openvla import OpenVLABackend, load, tiny_openvla  # noqa: E402


def keys(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2**32, (n, 2), dtype=np.uint64).astype(np.uint32)


def main() -> None:
    import torch
    import transformers
    assert (torch.__version__.split("+")[0], transformers.__version__) == ("2.2.0", "4.40.1")
    model, proc = tiny_openvla(seed=0)
    rng = np.random.default_rng(0)
    obs = {"image": rng.integers(0, 255, (3, 48, 48, 3), dtype=np.uint8),
           "embodiment": np.array(["widowx", "widowx", "google_robot"])}
    instr = ["put the spoon on the towel", "put carrot on plate", "pick coke can"]

    # the inputs reach the model's dtype: BatchFeature.to casts the pixels, leaves token ids integer
    b16 = OpenVLABackend(model, proc, dtype=torch.bfloat16, image_size=32)
    inputs = b16._inputs(obs["image"][0], instr[0])
    assert inputs["pixel_values"].dtype == torch.bfloat16 and inputs["input_ids"].dtype == torch.long

    # sampling: K distinct samples, the same for the same keys, other samples for other keys
    samp = OpenVLABackend(model, proc, temperature=1.0, image_size=32)
    a = samp.sample_actions(obs, instr, 6, keys(3))
    assert a.shape == (3, 6, 7) and a.dtype == np.float32
    assert all(len({s.tobytes() for s in a[i]}) > 1 for i in range(3)), "K samples must differ"
    assert np.array_equal(a, samp.sample_actions(obs, instr, 6, keys(3))), "seeded: same keys, same samples"
    assert not np.array_equal(a, samp.sample_actions(obs, instr, 6, keys(3, seed=1)))
    # un-normalisation per row's embodiment (Bridge-like q01/q99 +-0.05, Fractal-like +-0.5)
    assert np.abs(a[:2, :, :6]).max() <= 0.05 + 1e-6 and np.abs(a[2, :, :6]).max() > 0.05
    assert a[..., 6].min() >= -1 and a[..., 6].max() <= 1

    # greedy decoding (do_sample=False, upstream's default): K identical samples, so V-GPS has
    # nothing to choose; a near-zero temperature samples the greedy action
    greedy = OpenVLABackend(model, proc, do_sample=False, image_size=32).sample_actions(obs, instr, 4, keys(3))
    assert all(len({s.tobytes() for s in greedy[i]}) == 1 for i in range(3))
    cold = OpenVLABackend(model, proc, temperature=1e-4, image_size=32).sample_actions(obs, instr, 4, keys(3))
    assert np.array_equal(cold, greedy)
    try:
        OpenVLABackend(model, proc, image_size=32).sample_actions(
            {**obs, "embodiment": np.array(["franka"] * 3)}, instr, 2, keys(3))
        raise AssertionError("an embodiment without an un-normalisation key must be refused")
    except KeyError as e:
        assert "franka" in str(e)

    # loading a checkpoint: clear errors for what is not an OpenVLA checkpoint directory
    with tempfile.TemporaryDirectory() as d:
        for setup, err, words in ((lambda p: None, FileNotFoundError, "no config.json"),
                                  (lambda p: (p / "config.json").write_text('{"model_type": "llama"}'),
                                   ValueError, "modeling_prismatic.py")):
            setup(Path(d))
            try:
                load(d)
                raise AssertionError("load() must refuse " + d)
            except err as e:
                assert words in str(e), e
    print("all OpenVLA checks passed")


if __name__ == "__main__":
    main()

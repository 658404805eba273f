"""One Cal-QL critic step (conv encoder, image modality) on the real Bridge debug data."""
import dataclasses

import pytest

from vgps.config import CriticConfig, get_profile
from vgps.paths import BRIDGE_DEBUG

pytestmark = pytest.mark.skipif(not BRIDGE_DEBUG.exists(), reason="octo debug Bridge data absent")


class _HashEncoder:
    """Deterministic stand-in for MUSE (this test is about images, not language)."""
    def encode(self, texts):
        import numpy as np
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=512).astype(np.float32)
                         for t in texts])


def test_critic_step_on_bridge_debug_images(tmp_path, monkeypatch):
    monkeypatch.setenv("VGPS_ARTIFACTS", str(tmp_path / "artifacts"))   # the statistics cache
    from vgps.agents import load_critic, train
    from vgps.data.loader import load_training_data
    data_cfg = dataclasses.replace(get_profile("smoke").data, image_size=32)
    td = load_training_data([BRIDGE_DEBUG], profile=data_cfg, obs_keys=("image",), batch_size=4,
                            backend="memory", encoder=_HashEncoder())
    cfg = CriticConfig(obs_modality="image", encoder="conv_small", conv_channels=(8, 16, 16),
                       embedding_dim=32, hidden_dims=(32, 32), behavior_hidden_dims=(32,),
                       batch_size=4, num_steps=1, behavior_steps=1, cql_n_actions=2)
    r = train(cfg, td, tmp_path, progress=False)        # the normalizer comes with the data
    assert [m["phase"] for m in r.metrics] == ["behavior", "critic"]
    critic = load_critic(tmp_path)
    assert critic.normalizer == td.normalizer and critic.obs_modality == "image"

"""Deterministic tf.data input pipeline for large image datasets (the ``paper`` profile).

RLDS episodes → labelled transitions (:mod:`vgps.data.labels`, the same function as the
in-memory path) → ``shuffle(seed)`` per dataset → ``sample_from_datasets(weights, seed)`` →
batch → seeded augmentation (:mod:`vgps.data.augment`, seed ``[seed, batch_index]``) →
normalized actions + language embeddings → numpy, with ``options.deterministic = True``.
"""
from __future__ import annotations

import numpy as np

from vgps.data.labels import label_steps
from vgps.data.rlds import _episode_tf_map, describe_for, fractal_gripper

_EPISODE_BUFFER = 64


def _episode_dataset(path, split: str, keys, image_size, vocab: dict, cfg, seed: int):
    """One dataset -> infinite, shuffled stream of single transitions (dict of tensors)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    info = describe_for(path, keys)
    skip = {}
    for k in info["other_images"]:
        node = skip
        for part in k.split("/")[:-1]:
            node = node.setdefault(part, {})
        node[k.split("/")[-1]] = tfds.decode.SkipDecoding()
    ds = info["builder"].as_dataset(split=split, shuffle_files=False, decoders=skip or None)
    ds = ds.map(_episode_tf_map(info))
    has_success = "episode_metadata" in ds.element_spec and \
        "success" in ds.element_spec["episode_metadata"]

    def host_labels(action, lang, success):
        """numpy side: 7-D action, instruction id, reward labels (labels.label_steps)."""
        action = np.array(action, np.float32)
        if info["action_is_dict"]:       # column 6 holds RT-1's closedness command
            action[:, 6] = fractal_gripper(action[:, 6])
        instr = next((s.decode() for s in lang if s.decode().strip()), "").strip()
        lab = label_steps(len(action), horizon=cfg.horizon, shifted=cfg.shifted_rewards,
                          gamma=cfg.gamma, success=None if success < 0 else bool(success),
                          use_success_flag=cfg.use_success_flag)
        return (action, np.full(len(action), vocab.get(instr, -1), np.int32), lab["rewards"],
                lab["masks"], lab["mc_returns"], lab["next_index"])

    def to_transitions(raw):
        act = raw["action"]
        if info["action_is_dict"]:
            act = tf.concat([act["world_vector"], act["rotation_delta"],
                             act["gripper_closedness_action"][:, :1]], axis=1)
        succ = tf.cast(raw["episode_metadata"]["success"], tf.int32) if has_success \
            else tf.constant(-1)
        a, lid, r, m, mc, nxt = tf.numpy_function(
            host_labels, [act, raw[info["lang_key"]], succ],
            [tf.float32, tf.int32, tf.float32, tf.float32, tf.float32, tf.int64])
        obs = {}
        if info["image_key"] is not None:
            img = raw[info["image_key"]]
            if image_size is not None:
                img = tf.cast(tf.round(tf.image.resize(img, (image_size, image_size),
                                                       method="area")), tf.uint8)
            obs["image"] = img
        if info["state_keys"]:
            obs["state"] = tf.concat([tf.reshape(tf.cast(raw[k], tf.float32), (tf.shape(a)[0], -1))
                                      for k in info["state_keys"]], axis=1)
        tr = {"observations": obs,
              "next_observations": {k: tf.gather(v, nxt) for k, v in obs.items()},
              "actions": tf.reshape(a, (-1, 7)), "rewards": r, "masks": m, "mc_returns": mc,
              "lang_id": lid}
        return tf.data.Dataset.from_tensor_slices(tr)

    ds = ds.repeat().shuffle(_EPISODE_BUFFER, seed=seed)
    ds = ds.flat_map(to_transitions).filter(lambda t: t["lang_id"] >= 0)  # unlabelled episodes
    return ds.shuffle(cfg.shuffle_buffer, seed=seed + 1)


def make_tf_dataset(paths: list, weights, cfg, *, batch_size: int, seed: int, split: str,
                    normalizer, embeddings: np.ndarray, vocab: dict, keys=("image",),
                    image_size: int | None = None, augment: bool = True):
    """A ``tf.data.Dataset`` of batches (docs/design.md format) mixing ``paths`` by ``weights``."""
    import tensorflow as tf
    from vgps.data.augment import augment_tf
    w = np.asarray(weights, np.float64)
    per = [_episode_dataset(p, split, keys, image_size, vocab, cfg, seed * 1000 + 2 * i)
           for i, p in enumerate(paths)]
    ds = tf.data.Dataset.sample_from_datasets(per, weights=list(w / w.sum()), seed=seed)
    ds = ds.batch(batch_size, drop_remainder=True)
    mean, std = tf.constant(normalizer.mean), tf.constant(normalizer.std)
    mask, emb = tf.constant(normalizer.mask), tf.constant(embeddings, tf.float32)

    def finish(i, b):
        b["actions"] = tf.where(mask, (b["actions"] - mean) / std, b["actions"])
        b["language"] = tf.gather(emb, b.pop("lang_id"))
        if augment and "image" in b["observations"]:
            o, n = augment_tf([b["observations"]["image"], b["next_observations"]["image"]],
                              tf.stack([tf.constant(seed, tf.int64), i]), cfg)
            b["observations"]["image"], b["next_observations"]["image"] = o, n
        return b

    ds = ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.prefetch(2)
    opts = tf.data.Options()
    opts.deterministic = True
    return ds.with_options(opts)

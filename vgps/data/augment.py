"""Seeded image augmentation (paper App. B.1): random resized crop + colour jitter.

Stateless TF ops only: the parameters of image ``i`` in a batch depend on ``(seed, i)`` alone,
so a batch is reproducible from its seed. ``observations`` and ``next_observations`` of a
transition get the *same* crop and jitter (as in octo / bridge_data_v2). Order: crop → brightness
→ contrast → saturation → hue, with ranges from :class:`vgps.config.DataConfig`.
"""
from __future__ import annotations

import numpy as np


def _params(seed, batch: int, cfg):
    """Per-image augmentation parameters, each float32[B] (crop box as y0, x0, y1, x1)."""
    import tensorflow as tf
    seed = tf.cast(seed, tf.int64)
    u = lambda k, lo, hi: tf.random.stateless_uniform(  # noqa: E731
        [batch], seed=tf.stack([seed[0], seed[1] * 16 + k]), minval=lo, maxval=hi)
    area = u(0, cfg.crop_scale[0], cfg.crop_scale[1])
    log_r = u(1, float(np.log(cfg.crop_ratio[0])), float(np.log(cfg.crop_ratio[1])))
    ratio = tf.exp(log_r)
    h = tf.minimum(tf.sqrt(area / ratio), 1.0)
    w = tf.minimum(tf.sqrt(area * ratio), 1.0)
    y0 = u(2, 0.0, 1.0) * (1.0 - h)
    x0 = u(3, 0.0, 1.0) * (1.0 - w)
    return {"boxes": tf.stack([y0, x0, y0 + h, x0 + w], axis=1),
            "brightness": u(4, -cfg.brightness, cfg.brightness),
            "contrast": u(5, cfg.contrast[0], cfg.contrast[1]),
            "saturation": u(6, cfg.saturation[0], cfg.saturation[1]),
            "hue": u(7, -cfg.hue, cfg.hue)}


def _apply(images, p, out_size: int):
    """uint8/float [B, H, W, 3] -> float32 [B, out, out, 3] in [0, 1]."""
    import tensorflow as tf
    x = tf.cast(images, tf.float32) / 255.0
    b = tf.shape(x)[0]
    x = tf.image.crop_and_resize(x, p["boxes"], tf.range(b), (out_size, out_size))
    x = x + p["brightness"][:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = (x - mean) * p["contrast"][:, None, None, None] + mean
    x = tf.clip_by_value(x, 0.0, 1.0)
    hsv = tf.image.rgb_to_hsv(x)
    hue = tf.math.floormod(hsv[..., 0] + p["hue"][:, None, None], 1.0)
    sat = tf.clip_by_value(hsv[..., 1] * p["saturation"][:, None, None], 0.0, 1.0)
    x = tf.image.hsv_to_rgb(tf.stack([hue, sat, hsv[..., 2]], axis=-1))
    return tf.clip_by_value(x, 0.0, 1.0)


def augment_tf(images: list, seed, cfg, out_size: int | None = None) -> list:
    """Augment several uint8[B, H, W, 3] tensors with identical per-row parameters (TF, in-graph).

    ``seed``: int[2] tensor. Returns uint8 tensors of size ``out_size`` (default: input size).
    """
    import tensorflow as tf
    b = tf.shape(images[0])[0]
    size = out_size or int(images[0].shape[1])
    p = _params(seed, b, cfg)
    return [tf.cast(tf.round(_apply(im, p, size) * 255.0), tf.uint8) for im in images]


def augment_numpy(images: list[np.ndarray], seed: tuple[int, int], cfg,
                  out_size: int | None = None) -> list[np.ndarray]:
    """:func:`augment_tf` for numpy arrays (used by the in-memory sampler)."""
    import tensorflow as tf
    out = augment_tf([tf.convert_to_tensor(x) for x in images],
                     tf.constant(seed, tf.int64), cfg, out_size)
    return [o.numpy() for o in out]

"""The policy-server message format: one ``.npz`` archive per request and per answer.

A message is a flat dict of numpy arrays saved with :func:`numpy.savez` and loaded with
``allow_pickle=False``: numeric arrays keep their dtype and shape exactly, strings travel as numpy
unicode arrays, and nothing in a message can execute code when it is read. Observations are the
keys ``obs/<name>`` (``obs/image`` uint8 ``[B, H, W, 3]``, ``obs/state`` ``[B, S]``…).

Why this format and HTTP (:mod:`vgps_server.server`): both ends need the standard library and
numpy only, so the server runs unchanged in a policy's own environment (Python 3.8+, numpy 1.x or
2.x; Octo's jax 0.4.20, OpenVLA's torch, RT-1-X's TF 2.15) with nothing to install; a message is a
file any numpy can open (``curl --data-binary @req.npz``), and the raw bytes of a 256×256 frame
cost no encoding step (``.npz`` is an uncompressed zip).
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

PROTOCOL = "vgps-policy/1"
OBS_PREFIX = "obs/"
MAX_MESSAGE_BYTES = 256 * 2**20


class ProtocolError(ValueError):
    """A message that is not a valid policy-protocol message (the text says what is wrong)."""


def encode(arrays: dict) -> bytes:
    """``{name: array-like}`` → ``.npz`` bytes (no pickled objects allowed)."""
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype == object:
            raise ProtocolError(f"field {k!r}: object arrays cannot be sent; use numbers or strings")
        out[k] = a
    buf = io.BytesIO()
    np.savez(buf, **out)
    return buf.getvalue()


def decode(data: bytes) -> dict:
    """``.npz`` bytes → ``{name: np.ndarray}``; :class:`ProtocolError` for anything else."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ProtocolError(f"not a valid .npz message ({type(e).__name__}: {e})") from None


def encode_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


# ---------------------------------------------------------------------------- sample_actions
def sample_request(observations: dict, instructions, num_samples: int, rng) -> bytes:
    """The request of ``sample_actions``: observations, one instruction and one PRNG key
    (``uint32[2]``, jax's raw key layout) per row, and ``K``."""
    msg = {OBS_PREFIX + k: np.asarray(v) for k, v in observations.items()}
    msg["instructions"] = np.asarray(list(instructions), dtype=np.str_)
    msg["num_samples"] = np.asarray(int(num_samples), np.int64)
    msg["rng"] = np.asarray(rng)
    return encode(msg)


def parse_sample_request(msg: dict):
    """Validated ``(observations, instructions, num_samples, rng uint32[B, 2])`` of a request."""
    for field in ("instructions", "num_samples", "rng"):
        if field not in msg:
            raise ProtocolError(f"sample_actions request lacks the field {field!r} "
                                f"(has {sorted(msg)})")
    obs = {k[len(OBS_PREFIX):]: v for k, v in msg.items() if k.startswith(OBS_PREFIX)}
    if not obs:
        raise ProtocolError("sample_actions request holds no observation (fields 'obs/<name>')")
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in obs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ProtocolError(f"observation arrays must share one batch size, got {sizes}")
    b = next(iter(sizes.values()))
    instr = msg["instructions"]
    if instr.dtype.kind != "U" or instr.shape != (b,):
        raise ProtocolError(f"'instructions' must be {b} strings (one per row), got dtype "
                            f"{instr.dtype} shape {instr.shape}")
    k = msg["num_samples"]
    if k.shape != () or k.dtype.kind not in "iu" or int(k) < 1:
        raise ProtocolError(f"'num_samples' must be one integer >= 1, got {k!r}")
    rng = msg["rng"]
    if rng.dtype != np.uint32 or rng.shape != (b, 2):
        raise ProtocolError(f"'rng' must be one raw PRNG key per row, uint32[{b}, 2], got dtype "
                            f"{rng.dtype} shape {rng.shape}")
    return obs, [str(s) for s in instr], int(k), rng


def parse_select_request(msg: dict) -> np.ndarray:
    """The validated ``index int64[B]`` of a ``select`` request (the steering layer's choice of
    this step's candidates, one per row)."""
    if "index" not in msg:
        raise ProtocolError(f"select request lacks the field 'index' (has {sorted(msg)})")
    idx = msg["index"]
    if idx.ndim != 1 or idx.dtype.kind not in "iu" or (idx < 0).any():
        raise ProtocolError(f"'index' must be one integer >= 0 per row, got dtype {idx.dtype} "
                            f"shape {idx.shape}")
    return idx.astype(np.int64)


def check_actions(actions, batch_size: int, num_samples: int, where: str) -> np.ndarray:
    """``actions`` as float32 ``[B, K, 7]`` or ``[B, K, H, 7]`` with finite values, else
    :class:`ProtocolError` naming ``where``."""
    a = np.asarray(actions, dtype=np.float32)
    if a.ndim not in (3, 4) or a.shape[:2] != (batch_size, num_samples) or a.shape[-1] != 7 \
            or (a.ndim == 4 and a.shape[2] < 1):
        raise ProtocolError(f"{where}: actions of shape {a.shape}, expected [B, K, 7] or "
                            f"[B, K, H, 7] with B={batch_size}, K={num_samples}")
    if not np.isfinite(a).all():
        raise ProtocolError(f"{where}: {int((~np.isfinite(a)).sum())} non-finite action values")
    return a

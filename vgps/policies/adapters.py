"""The real generalists as in-process :class:`~vgps.policies.base.Policy` objects.

What each policy does with its inputs and outputs lives in ONE place, the backends of
:mod:`vgps_server` (``octo``, ``rt1x``, ``openvla``), which follow the upstream files they cite
and are tested against the real upstream code in the policy's own environment (``make
test-policies``). Octo, RT-1-X and OpenVLA pin frameworks that cannot share a process with ours
(jax 0.4.20, TF 2.15 + tf_agents, torch 2.2), so the usual route is a server in that environment
and :class:`vgps.remote.RemotePolicy` here (docs/serving.md). The adapters below wrap the same
backends in process, for an environment where the policy's framework does import beside vgps;
where it does not, they raise :class:`MissingDependencyError` naming the reason and the route.

Output everywhere: float32 ``[B, K, 7]`` raw actions in the Bridge convention
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` with gripper 1 = open, 0 = closed. ``rng`` is one
PRNG key per row (:func:`~vgps.policies.base.row_keys`), and each row's samples are drawn from its
own key, so a robot's actions do not depend on the other rows of the batch.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from vgps.policies.base import batch_size_of, check_sampling_args, raw_keys, validate_actions


class MissingDependencyError(ImportError):
    """A real-policy package or checkpoint is not available on this machine."""


def _require(module: str, install: str, policy_env: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError`. Any failure counts, not only
    ImportError: octo under jax 0.10 fails with AttributeError (``jax.random.KeyArray``)."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - every import failure gets the same advice
        where = (f"; it pins its own frameworks, so run it in its environment and steer it "
                 f"remotely: make policy-env POLICY={policy_env}, python -m vgps_server "
                 f"{policy_env} ..., RemotePolicy(url) (docs/serving.md)") if policy_env else ""
        what = "is not installed" if isinstance(e, ModuleNotFoundError) else "cannot be imported here"
        raise MissingDependencyError(f"the {module!r} package {what} ({type(e).__name__}: {e}); "
                                     f"install it with: {install}{where}") from e


def _require_dir(path, what: str, where: str) -> Path:
    p = Path(path) if path is not None else None
    if p is None or not p.exists():
        raise MissingDependencyError(f"{what} checkpoint not found at {path!r}: download it and "
                                     f"pass its local directory ({where})")
    return p


class BackendPolicy:
    """A :mod:`vgps_server` backend as an in-process policy: checks the arguments, passes one raw
    key per row (so the actions equal those of the same backend served remotely), adds the
    observation field ``embodiment`` when given and absent, validates the output ``[B, K, 7]``."""

    def __init__(self, backend, name: str, embodiment: str | None = None):
        self.backend, self.name, self.embodiment = backend, name, embodiment

    def reset(self, batch_size: int) -> None:
        self.backend.reset(batch_size)

    def request(self, observations, instructions, num_samples, rng):
        """The checked arguments a backend takes: ``(observations (+ embodiment), instructions,
        K, raw keys uint32[B, 2])``."""
        check_sampling_args(num_samples)
        b = batch_size_of(observations)
        if len(instructions) != b:
            raise ValueError(f"{self.name}: {len(instructions)} instructions for a batch of {b}")
        keys = raw_keys(rng, b, self.name)
        if self.embodiment is not None and "embodiment" not in observations:
            observations = {**observations, "embodiment": np.asarray([self.embodiment] * b)}
        return observations, list(instructions), int(num_samples), keys

    def sample_actions(self, observations, instructions, num_samples, rng):
        a = self.backend.sample_actions(*self.request(observations, instructions, num_samples, rng))
        return validate_actions(a, len(instructions), num_samples, self.name)

    def select(self, index) -> np.ndarray | None:
        """The steering layer's choice ``index [B]`` of the last candidates, passed to a backend
        that takes it (``select``); returns the action to execute instead ``[B, 7]``, or None."""
        sel = getattr(self.backend, "select", None)
        return None if sel is None else self._executed(sel(np.asarray(index, np.int64)), len(index))

    def _executed(self, actions, batch_size: int):
        if actions is None:
            return None
        return validate_actions(np.asarray(actions)[:, None], batch_size, 1, f"{self.name}.select")[:, 0]


# ------------------------------------------------------------------------------------------ Octo
def OctoAdapter(checkpoint_dir=None, *, model=None, embed=None, ensemble: bool = True,
                unnorm_keys: dict | None = None, embodiment: str | None = None,
                name: str = "octo", scoring: str = "ensembled") -> BackendPolicy:
    """Octo in process: :class:`vgps_server.octo.OctoBackend` (SimplerEnv's way: 2-frame history,
    chunks with temporal ensembling, per-robot un-normalisation) over ``OctoModel.load_pretrained(
    checkpoint_dir)`` or ``model``. ``scoring="raw_first"``: the released V-GPS code's candidates
    (raw first actions; the chosen chunk is ensembled, see :meth:`BackendPolicy.select`). octo 1.0 / HEAD need jax 0.4.20: under our pins the import
    fails, and the error says how to serve it instead."""
    from vgps_server.octo import OctoBackend
    if model is None:
        om = _require("octo.model.octo_model", "pip install --no-deps <octo source> (octo-models/octo)",
                      policy_env="octo")
        d = _require_dir(checkpoint_dir, "Octo", "e.g. a snapshot of hf://rail-berkeley/octo-small-1.5")
        model = om.OctoModel.load_pretrained(str(d))
    return BackendPolicy(OctoBackend(model, name=name, unnorm_keys=unnorm_keys, ensemble=ensemble,
                                     embed=embed, scoring=scoring), name, embodiment)


# --------------------------------------------------------------------------------------- OpenVLA
def OpenVLAAdapter(checkpoint_dir=None, *, model=None, processor=None, temperature: float = 1.0,
                   do_sample: bool = True, unnorm_keys: dict | None = None,
                   embodiment: str | None = None, name: str = "openvla") -> BackendPolicy:
    """OpenVLA in process: :class:`vgps_server.openvla.OpenVLABackend` (inputs on the model's
    device and dtype, ``do_sample`` + ``temperature`` passed to ``generate``, K forward passes)
    over a local checkpoint (e.g. ``openvla/openvla-7b``) or ``model`` + ``processor``."""
    from vgps_server.openvla import OpenVLABackend
    if model is None or processor is None:
        tr = _require("transformers", "pip install transformers==4.40.1 timm tokenizers torch==2.2.0",
                      policy_env="openvla")
        d = _require_dir(checkpoint_dir, "OpenVLA", "e.g. a snapshot of hf://openvla/openvla-7b")
        processor = tr.AutoProcessor.from_pretrained(str(d), trust_remote_code=True)
        model = tr.AutoModelForVision2Seq.from_pretrained(str(d), trust_remote_code=True)
    return BackendPolicy(OpenVLABackend(model, processor, name=name, temperature=temperature,
                                        do_sample=do_sample, unnorm_keys=unnorm_keys),
                         name, embodiment)


# ----------------------------------------------------------------------------------------- RT-1-X
def RT1XAdapter(saved_model_dir=None, language_encoder=None, *, policy=None,
                embodiment: str | None = None, name: str = "rt1x") -> BackendPolicy:
    """RT-1-X in process: :class:`vgps_server.rt1x.RT1XBackend` (tf_agents
    ``SavedModelPyTFEagerPolicy``, ``ts.transition``, resize-with-pad to 256×320, SimplerEnv's
    action post-processing per robot). ``language_encoder`` (``encode(list[str]) -> [N, 512]``)
    is required: RT-1-X reads USE-large embeddings. It decodes greedily: K samples are identical."""
    from vgps_server.rt1x import RT1XBackend, load_policy
    if policy is None:
        _require("tf_agents", "pip install tensorflow==2.15 tf-agents==0.19", policy_env="rt1x")
        d = _require_dir(saved_model_dir, "RT-1-X", "the rt_1_x_tf_trained_for_002272480_step "
                         "SavedModel from the open_x_embodiment release")
        policy = load_policy(str(d))
    embed = None if language_encoder is None else language_encoder.encode
    return BackendPolicy(RT1XBackend(policy, embed, name=name,
                                     default_embodiment=embodiment or "widowx"), name, embodiment)

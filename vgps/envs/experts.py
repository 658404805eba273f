"""Scripted experts with the paper's §4 failure modes and per-episode quality levels.

``ScriptedExpert(quality, failure_mode=None, seed=0)``; ``reset(env)`` after ``env.reset``
draws the episode's quality level and failure mode (for ``quality="mixed"``) and its noise from
``(seed, env.episode_seed)``; ``act(env)`` returns a float32[7] action in raw env scale.

Failure modes (paper §4): ``imprecise_grasp`` (grasp-point offset, closing too high/early; may
regrasp), ``premature_release`` (opens while carrying; may regrasp), ``late_release`` (holds over
the target while the arm drifts, then drops), plus Gaussian per-step action noise by quality.
The "mix A" that made V-GPS show an effect in the notes' probes is :data:`MIX_A`.
"""
from __future__ import annotations

import numpy as np

from vgps.envs.catalogue import OBJECTS
from vgps.envs.core import TCP_CLEARANCE

QUALITY_NOISE = {"expert": 0.0, "high": 0.06, "medium": 0.14, "low": 0.25}   # xyz std / max_step
MIXED_QUALITY = (("high", 0.45), ("medium", 0.4), ("low", 0.15))
FAILURE_MODES = ("none", "imprecise_grasp", "premature_release", "late_release")
MIX_A = (("none", 0.4), ("imprecise_grasp", 0.2), ("premature_release", 0.2), ("late_release", 0.2))
RECOVER_PROB = {"imprecise_grasp": 0.6, "premature_release": 0.5}
OPEN, CLOSED = 1.0, 0.0


def _draw(rng, table) -> str:
    names, p = zip(*table)
    return str(names[rng.choice(len(names), p=np.asarray(p) / sum(p))])


class ScriptedExpert:
    """Privileged pick-and-place controller; see the module docstring."""

    def __init__(self, quality: str = "expert", failure_mode: str | None = None, seed: int = 0,
                 mix: tuple = MIX_A):
        if quality not in (*QUALITY_NOISE, "mixed"):
            raise ValueError(f"quality must be one of {[*QUALITY_NOISE, 'mixed']}, got {quality!r}")
        if failure_mode is not None and failure_mode not in FAILURE_MODES:
            raise ValueError(f"failure_mode must be one of {FAILURE_MODES}, got {failure_mode!r}")
        self.quality_setting, self.failure_setting = quality, failure_mode
        self.seed, self.mix = int(seed), mix

    # --- episode setup ---------------------------------------------------------------------------
    def reset(self, env) -> None:
        env = env.unwrapped
        self.rng = rng = np.random.default_rng([self.seed, env.episode_seed, 7])
        mixed = self.quality_setting == "mixed"
        self.quality = _draw(rng, MIXED_QUALITY) if mixed else self.quality_setting
        mode = self.failure_setting or (_draw(rng, self.mix) if mixed else "none")
        if env.task.kind == "pick" and mode == "late_release":
            mode = "imprecise_grasp"      # holding on is the goal of a pick task
        self.failure_mode = mode
        self.noise = QUALITY_NOISE[self.quality] * env.emb.max_step
        self.recover = rng.uniform() < RECOVER_PROB.get(mode, 0.0)
        self.release_frac = rng.uniform(0.15, 0.85)
        ang = rng.uniform(0, 2 * np.pi)
        up = 0.35 if env.task.kind == "in" else 0.0      # leave the container while drifting
        self.drift = rng.uniform(0.3, 0.7) * env.emb.max_step * np.array([np.cos(ang), np.sin(ang), up])
        self.drift_steps = int(rng.integers(3, 8))
        self._new_grasp(env, faulty=mode == "imprecise_grasp")
        self.phase, self.count, self.gave_up, self.attempts = "approach", 0, False, 0
        self._prev_tcp = None
        src = env.object_position(env.source)
        self.src0 = src
        self.carry_from = None

    def _new_grasp(self, env, faulty: bool) -> None:
        r = self.rng
        self.grasp_off = np.array([*r.normal(0, 0.012, 2), r.uniform(0.012, 0.03)]) if faulty else np.zeros(3)
        self.close_early = faulty and r.uniform() < 0.5

    # --- geometry --------------------------------------------------------------------------------
    def _grasp_point(self, env) -> np.ndarray:
        s = OBJECTS[env.source]
        p = env.object_position(env.source)
        upright = (p[2] - env.table_z) > 0.8 * s.rest_z
        p = p + [0, 0, s.grasp_dz if upright else 0.0] + self.grasp_off
        p[2] = max(p[2], env.table_z + TCP_CLEARANCE + 0.002)
        return p

    def _place_point(self, env) -> np.ndarray:
        s, kind = OBJECTS[env.source], env.task.kind
        hold = s.rest_z + s.grasp_dz                       # TCP height above the object's bottom
        if kind == "pick":
            p = self.src0 + [0, 0, 0.10 + s.grasp_dz]
            return p
        t = env.object_position(env.target)
        if kind == "near":
            d = self.src0[:2] - t[:2]
            d = d / max(np.linalg.norm(d), 1e-6)
            return np.array([*(t[:2] + 0.10 * d), env.table_z + hold + 0.012])
        spec = OBJECTS[env.target]
        top = t[2] - spec.rest_z + (0.012 if kind == "in" else spec.top)
        return np.array([t[0], t[1], top + hold + 0.012])

    def _carry_z(self, env) -> float:
        s = OBJECTS[env.source]
        tgt_top = OBJECTS[env.target].top if env.target else 0.0
        return env.table_z + max(tgt_top, 0.06) + s.rest_z + s.grasp_dz + 0.06

    # --- control ---------------------------------------------------------------------------------
    def act(self, env) -> np.ndarray:
        env = env.unwrapped
        tcp = env.tcp_position()
        target, grip = self._plan(env, tcp)
        a = np.zeros(7)
        m = env.emb.max_step
        a[:3] = np.clip(target - tcp, -0.9 * m, 0.9 * m)
        a[3:6] = np.clip(-env.tcp_rpy(), -env.emb.max_rot_step, env.emb.max_rot_step)
        if self.noise > 0:
            a[:3] += self.rng.normal(0, self.noise, 3)
            a[3:6] += self.rng.normal(0, 0.1 * self.noise / m, 3)
        a[6] = grip
        return np.clip(a, env.action_space.low, env.action_space.high).astype(np.float32)

    def _goto(self, phase: str) -> None:
        self.phase, self.count = phase, 0

    def _plan(self, env, tcp):
        """Return (TCP target, gripper command) and advance the phase machine."""
        self.count += 1
        # the arm stopped moving (fingers on the object/table): act on the state, not a timer, so
        # the gripper command is a function of what a policy can observe
        prev, self._prev_tcp = getattr(self, "_prev_tcp", None), tcp.copy()
        stalled = prev is not None and self.count >= 2 and np.linalg.norm(tcp - prev) < 0.003
        g = self._grasp_point(env)
        carry = self._carry_z(env)
        src = env.object_position(env.source)
        ph = self.phase
        if ph == "approach":
            tgt = np.array([g[0], g[1], max(carry, g[2] + 0.05)])
            if np.linalg.norm((tgt - tcp)[:2]) < 0.01 and abs(tgt[2] - tcp[2]) < 0.02 or self.count > 12:
                self._goto("descend")
            return tgt, OPEN
        if ph == "descend":
            if self.close_early and self.count >= 2:
                self._goto("close")
            elif np.linalg.norm(g - tcp) < 0.008 or self.count > 6 or \
                    (stalled and np.linalg.norm((g - tcp)[:2]) < 0.012):
                self._goto("close")
            return g, OPEN
        if ph == "close":
            if self.count >= 2:
                self._goto("lift")
            return tcp.copy() if self.close_early else g, CLOSED
        if ph == "lift":
            tgt = np.array([tcp[0], tcp[1], carry])
            if self.count >= 2 and src[2] < self.src0[2] + 0.015 and not env.grasped(env.source):
                return self._failed_grasp(tcp)
            if abs(carry - tcp[2]) < 0.015 or self.count > 6:
                if env.task.kind == "pick":
                    self._goto("hold")
                else:
                    self.carry_from = tcp.copy()
                    self._goto("transport")
            if env.task.kind == "pick" and self.failure_mode == "premature_release" \
                    and self.count >= 2 and not self.recover_done():
                return self._drop(tcp)
            return tgt, CLOSED
        if ph == "transport":
            p = self._place_point(env)
            tgt = np.array([p[0], p[1], carry])
            if self.failure_mode == "premature_release" and not self.recover_done():
                total = np.linalg.norm((tgt - self.carry_from)[:2])
                done = np.linalg.norm((tcp - self.carry_from)[:2])
                if total < 1e-6 or done / total >= self.release_frac:
                    return self._drop(tcp)
            if np.linalg.norm((tgt - tcp)[:2]) < 0.01 or self.count > 12:
                self._goto("lower")
            return tgt, CLOSED
        if ph == "lower":
            p = self._place_point(env)
            if np.linalg.norm(p - tcp) < 0.01 or self.count > 6 or \
                    (stalled and np.linalg.norm((p - tcp)[:2]) < 0.012):
                self._goto("drift" if self.failure_mode == "late_release" else "release")
                self.drift_target = p.copy()
            return p, CLOSED
        if ph == "drift":
            self.drift_target = self.drift_target + self.drift
            if self.count >= self.drift_steps:
                self._goto("release")
            return self.drift_target, CLOSED
        if ph == "release":
            if self.count >= 2:
                self._goto("retreat")
            return tcp.copy(), OPEN
        if ph == "retreat":
            if self.count > 4:
                self.gave_up = True
            return np.array([tcp[0], tcp[1], carry]), OPEN
        if ph == "dropped":
            if self.count >= 2:
                if self.recover:
                    self.attempts += 1
                    self._new_grasp(env, faulty=False)
                    self._goto("approach")
                else:
                    self.gave_up = True
            return np.array([tcp[0], tcp[1], carry]), OPEN
        if ph == "hold":
            if self.count > 6:
                self.gave_up = True
            return self._place_point(env), CLOSED
        raise AssertionError(ph)

    def recover_done(self) -> bool:
        """The scripted mistake happens once; after a regrasp the expert behaves cleanly."""
        return self.attempts > 0

    def _failed_grasp(self, tcp):
        self._goto("dropped")
        return np.array([tcp[0], tcp[1], tcp[2] + 0.03]), OPEN

    def _drop(self, tcp):
        self._goto("dropped")
        return tcp.copy(), OPEN


def rollout(env, expert: ScriptedExpert, seed: int, max_extra: int = 3) -> dict:
    """Run one expert episode; returns lists of observations/actions plus outcome flags.

    Stops at success, at the horizon, on a simulator blow-up, or ``max_extra`` steps after the
    expert gives up (a failed demonstration).
    """
    obs, info = env.reset(seed=seed)
    expert.reset(env)
    observations, actions, extra = [obs], [], 0
    success = unstable = False
    while True:
        a = expert.act(env)
        obs, _, term, trunc, info = env.step(a)
        actions.append(a)
        observations.append(obs)
        success, unstable = info["success"], info["unstable"]
        extra += expert.gave_up
        if term or trunc or extra > max_extra:
            break
    return {"observations": observations, "actions": actions, "success": bool(success),
            "unstable": bool(unstable), "instruction": info["instruction"],
            "quality": expert.quality, "failure_mode": expert.failure_mode}

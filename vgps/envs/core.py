"""``TabletopEnv``: one language-conditioned tabletop task as a Gymnasium environment.

Action (raw env scale, Bridge convention): ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``; the
deltas move the mocap target from the current tool pose (clipped to the action box and the
workspace), ``gripper > 0.5`` opens, otherwise closes. Observation ``{"image", "state"}`` (see
:mod:`vgps.envs.catalogue` for the state layout). ``reset(seed=s)`` re-seeds everything: the
same seed gives bit-identical observations in any process. A simulator blow-up (non-finite
state or MuJoCo's bad-acceleration warning) truncates the episode with ``info["unstable"]``.
"""
from __future__ import annotations

import atexit
import os
import sys
import weakref

GL_BACKEND = os.environ.get("MUJOCO_GL", "osmesa") or "osmesa"
os.environ.setdefault("PYOPENGL_PLATFORM", GL_BACKEND)
if "mujoco" not in sys.modules:
    # Import MuJoCo without loading Mesa GL: Mesa (OSMesa/EGL) and TensorFlow crash when they share
    # a process, so GL is loaded only when a renderer is first needed (see _make_renderer).
    os.environ["MUJOCO_GL"] = "disable"
    import mujoco  # noqa: E402
    os.environ["MUJOCO_GL"] = GL_BACKEND

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402,F811
import numpy as np  # noqa: E402

from vgps.envs import rotations as rot  # noqa: E402
from vgps.envs.catalogue import (EMBODIMENTS, OBJECT_NAMES, OBJECTS, PER_OBJECT,  # noqa: E402
                                 PROPRIO_DIM, STATE_DIM)
from vgps.envs.scene import PARK_Z, TIMESTEP, build_xml  # noqa: E402
from vgps.envs.shifts import DISTRACTOR_POOL, TRAIN_DISTRACTORS, apply_visual, parse_shift  # noqa: E402
from vgps.envs import tasks as T  # noqa: E402

N_CHUNKS = 5                 # mocap interpolation points per control step
TCP_CLEARANCE = 0.014        # lowest TCP height above the table (finger tips just clear it)
ROT_LIMIT = np.array([0.6, 0.6, 1.6])
SETTLE_STEPS = 40


class GLUnavailableError(RuntimeError):
    pass


def _load_gl() -> None:
    """Install MuJoCo's GL context class for ``$MUJOCO_GL`` (osmesa or egl) on first use."""
    from mujoco.rendering.classic import gl_context
    if getattr(gl_context, "GLContext", None) is not None:
        return
    if "tensorflow" in sys.modules:
        raise GLUnavailableError(
            "TensorFlow is loaded in this process, and Mesa GL (OSMesa/EGL) crashes alongside it. "
            "Render in a process that does not import TensorFlow (vgps.envs.generate renders in "
            "worker processes), or pass render=False for state-only environments.")
    if GL_BACKEND == "egl":
        from mujoco.egl import GLContext
    else:
        from mujoco.osmesa import GLContext
    gl_context.GLContext = GLContext
    sys.meta_path.insert(0, _NoTensorFlowAfterGL())


class _NoTensorFlowAfterGL:
    """Import hook installed once GL is loaded: importing TensorFlow then segfaults the process
    (measured: render, then ``import tensorflow`` exits with SIGSEGV), so it is an ImportError
    that says why. The other order is refused by :func:`_load_gl`."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tensorflow":
            raise ImportError(
                f"cannot import {name}: this process has rendered with Mesa GL (OSMesa/EGL), "
                "which crashes alongside TensorFlow (either order). Render and use TensorFlow "
                "(RLDS data, the MUSE encoder) in separate processes, as vgps.envs.generate "
                "does with its render workers.", name=name)
        return None


_RENDERERS: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_renderers() -> None:
    """Free GL contexts before interpreter teardown (avoids noisy ``Renderer.__del__`` errors)."""
    for r in list(_RENDERERS):
        try:
            r.close()
        except Exception:  # noqa: BLE001
            pass


def _make_renderer(model, size: int):
    try:
        _load_gl()
        r = mujoco.Renderer(model, size, size)
        _RENDERERS.add(r)
        return r
    except GLUnavailableError:
        raise
    except Exception as e:  # noqa: BLE001 - any GL failure gets the same advice
        raise GLUnavailableError(
            f"offscreen rendering failed ({type(e).__name__}: {e}). Install OSMesa "
            "(`sudo apt-get install libosmesa6`) and set MUJOCO_GL=osmesa (or MUJOCO_GL=egl with "
            "libegl1), or pass render=False for state-only environments.") from e


class TabletopEnv(gym.Env):
    """A seeded MuJoCo tabletop task; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task_id: str, image_size: int = 64, shift: str | None = None,
                 render: bool = True):
        if task_id not in T.TASKS:
            raise ValueError(f"unknown task id {task_id!r}; valid ids: {', '.join(T.TASKS)}")
        self.task = T.TASKS[task_id]
        self.emb = EMBODIMENTS[self.task.embodiment]
        self.shift = parse_shift(shift)
        self.image_size = int(image_size)
        self.do_render = bool(render)
        self.metadata = {**self.metadata, "render_fps": self.emb.control_hz}
        names = T.task_objects(self.task)
        names += tuple(n for n in self.shift.distractor_pool(self.emb.name) if n not in names)
        self.object_names = names
        # the table height is compiled in: moving a static geom at run time leaves the collision
        # broadphase at the old height (objects fell through a raised table). One model per height
        # an episode can have, built when first needed (same bodies and ids in each).
        self._models: dict[float, tuple] = {}
        self._use_model(self.shift.table_heights[0])
        self._ids()
        self.n_sub = int(round(1.0 / (self.emb.control_hz * TIMESTEP) / N_CHUNKS)) * N_CHUNKS
        s = self.image_size
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (s, s, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)})
        m, r = self.emb.max_step, self.emb.max_rot_step
        self.action_space = gym.spaces.Box(np.array([-m] * 3 + [-r] * 3 + [0.0], np.float32),
                                           np.array([m] * 3 + [r] * 3 + [1.0], np.float32))
        self._blank = np.zeros((s, s, 3), np.uint8)
        self._needs_reset = True

    def _use_model(self, table_dz: float) -> None:
        if table_dz not in self._models:
            m = mujoco.MjModel.from_xml_string(build_xml(self.emb, self.object_names, table_dz,
                                                         speckle=self.shift.diverse))
            r = _make_renderer(m, self.image_size) if self.do_render else None
            self._models[table_dz] = (m, mujoco.MjData(m), r)
        self.model, self.data, self._renderer = self._models[table_dz]

    # --- model bookkeeping -----------------------------------------------------------------------
    def _ids(self):
        m = self.model
        bid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)  # noqa: E731
        gid = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n)  # noqa: E731
        self._palm_q = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "palm_joint")]
        self._fing_q = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f)]
                        for f in ("finger_l", "finger_r")]
        self._fing_g = np.array([gid("finger_l_g"), gid("finger_r_g")])
        self._mocap = {n: m.body_mocapid[bid(n)] for n in ("ee_target", "arm_upper", "arm_fore", "arm_wrist")}
        self._obj_body = {n: bid(n) for n in self.object_names}
        self._obj_q = {n: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{n}_joint")]
                       for n in self.object_names}
        self._obj_v = {n: m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{n}_joint")]
                       for n in self.object_names}
        self._obj_geoms = {n: np.array([g for g in range(m.ngeom) if m.geom_bodyid[g] == b
                                        and m.geom_contype[g] != 0])
                           for n, b in self._obj_body.items()}
        mat = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, n)  # noqa: E731
        self._vis_ids = {"table": gid("table"), "checker": mat("table_checker"),
                         "speckle": mat("table_speckle")}
        self._vis_base = {"table_rgba": m.geom_rgba[gid("table")].copy(),
                          "light_dir": m.light_dir[0].copy(), "light_diffuse": m.light_diffuse[0].copy(),
                          "cam_pos": m.cam_pos[0].copy(), "cam_quat": m.cam_quat[0].copy()}

    # --- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31 - 1))
        self.episode_seed = int(seed)
        rng = np.random.default_rng(self.episode_seed)
        self.scene = self.shift.draw(self.episode_seed)
        self._use_model(self.scene.table_dz)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        apply_visual(m, self._vis_ids, self._vis_base, self.scene)
        self.table_z = self.scene.table_dz
        # separate streams: the task layout for a seed is the same with or without a shift
        self._choose_objects(rng, np.random.default_rng([seed, 2]))
        self._place_objects(rng, np.random.default_rng([seed, 3]))
        home = np.array(self.emb.home) + [*rng.uniform(-0.02, 0.02, 2), self.table_z]
        d.mocap_pos[self._mocap["ee_target"]] = home
        d.mocap_quat[self._mocap["ee_target"]] = (1, 0, 0, 0)
        d.qpos[self._palm_q:self._palm_q + 7] = [*home, 1, 0, 0, 0]
        d.qpos[self._fing_q] = self.emb.max_open / 2
        d.ctrl[:] = self.emb.max_open / 2
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=SETTLE_STEPS)
        self._init_pos = {n: self.object_position(n) for n in self.present}
        self._t, self._hold, self._needs_reset = 0, 0, False
        self._warn0 = int(d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)
        return self._obs(), self._info(False, False)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (and again after an episode ends)")
        a = self._check_action(action)
        a = np.clip(a, self.action_space.low, self.action_space.high)
        m, d = self.model, self.data
        lo = np.array(self.emb.workspace_lo) + [0, 0, self.table_z + TCP_CLEARANCE]
        hi = np.array(self.emb.workspace_hi) + [0, 0, self.table_z]
        target = np.clip(self.tcp_position() + a[:3], lo, hi)
        rpy = np.clip(self.tcp_rpy() + a[3:6], -ROT_LIMIT, ROT_LIMIT)
        mid = self._mocap["ee_target"]
        d.mocap_quat[mid] = rot.euler_to_quat(rpy)
        d.ctrl[:] = self.emb.max_open / 2 if a[6] > 0.5 else 0.0
        start = d.mocap_pos[mid].copy()
        for k in range(1, N_CHUNKS + 1):
            d.mocap_pos[mid] = start + (target - start) * (k / N_CHUNKS)
            mujoco.mj_step(m, d, nstep=self.n_sub // N_CHUNKS)
        self._t += 1
        unstable = (int(d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number) > self._warn0
                    or not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))))
        ok = (not unstable) and self._predicate()
        self._hold = self._hold + 1 if ok else 0
        success = self._hold >= T.HOLD_STEPS
        truncated = unstable or (self._t >= self.task.horizon and not success)
        self._needs_reset = success or truncated
        obs = self._obs()
        info = self._info(success, unstable)
        return obs, float(success), bool(success), bool(truncated), info

    def render(self):
        return self._render_image()

    def close(self):
        for dz, (m, d, r) in list(self._models.items()):
            if r is not None:
                r.close()
            self._models[dz] = (m, d, None)
        self._renderer = None

    # --- episode setup ---------------------------------------------------------------------------
    def _choose_objects(self, rng, rng_extra):
        t = self.task
        pool = list(t.pool)
        picked = [pool[i] for i in rng.permutation(len(pool))[:t.n_pool]] if t.n_pool else []
        if t.kind == "near":
            self.source, self.target = picked[0], picked[1]
            self.instruction = t.instruction.format(object1=OBJECTS[self.source].label,
                                                    object2=OBJECTS[self.target].label)
        else:
            self.source, self.target, self.instruction = t.source, t.target, t.instruction
        present = [n for n in (t.source, t.target, *t.extra) if n] + picked
        self.task_present = tuple(dict.fromkeys(present))
        if self.scene.n_distractors:
            pool = (DISTRACTOR_POOL if self.scene.distractor_pool == "held_out"
                    else TRAIN_DISTRACTORS)[self.emb.name]
            cand = [n for n in pool if n not in present]
            present += [cand[i] for i in rng_extra.permutation(len(cand))[:self.scene.n_distractors]]
        self.present = tuple(dict.fromkeys(present))

    def _place_objects(self, rng, rng_extra):
        m, d = self.model, self.data
        placed: list[tuple[np.ndarray, float]] = []
        distractors = [n for n in self.present if n not in self.task_present]
        order = [n for n in self.task_present] + distractors
        order += [n for n in self.object_names if n not in order]
        for n in order:
            i = self.object_names.index(n)
            if n in distractors:
                rng = rng_extra
            q, spec = self._obj_q[n], OBJECTS[n]
            on = n in self.present
            m.geom_contype[self._obj_geoms[n]] = int(on)
            m.geom_conaffinity[self._obj_geoms[n]] = int(on)
            m.body_gravcomp[self._obj_body[n]] = 0.0 if on else 1.0
            if not on:
                d.qpos[q:q + 7] = [3 + 0.3 * i, 3, PARK_Z, 1, 0, 0, 0]
                continue
            sep = 0.18 if self.task.kind == "near" else 0.0
            for _ in range(1000):
                xy = np.array([rng.uniform(*self.emb.spawn_x), rng.uniform(*self.emb.spawn_y)])
                if all(np.linalg.norm(xy - p) > max(r + spec.radius, sep) for p, r in placed):
                    break
            placed.append((xy, spec.radius))
            yaw = 0.0 if spec.roll else rng.uniform(-0.25, 0.25)
            d.qpos[q:q + 7] = [*xy, self.table_z + spec.rest_z + 0.001, *rot.euler_to_quat([0, 0, yaw])]

    # --- privileged simulator state (experts, predicates, tests) ---------------------------------
    def object_position(self, name: str) -> np.ndarray:
        q = self._obj_q[name]
        return self.data.qpos[q:q + 3].copy()

    def tcp_position(self) -> np.ndarray:
        return self.data.qpos[self._palm_q:self._palm_q + 3].copy()

    def tcp_rpy(self) -> np.ndarray:
        return rot.quat_to_euler(self.data.qpos[self._palm_q + 3:self._palm_q + 7])

    def gripper_opening(self) -> float:
        return float(np.clip(self.data.qpos[self._fing_q].sum() / self.emb.max_open, 0.0, 1.0))

    def grasped(self, name: str) -> bool:
        """Both fingers touch ``name``."""
        d = self.data
        n = d.ncon
        if n == 0:
            return False
        g1, g2 = d.contact.geom1[:n], d.contact.geom2[:n]
        obj = self._obj_geoms[name]
        hit = np.isin(g1, obj) | np.isin(g2, obj)
        return all(np.any(hit & ((g1 == f) | (g2 == f))) for f in self._fing_g)

    def _predicate(self) -> bool:
        t, src = self.task, self.source
        p, held = self.object_position(src), self.grasped(src)
        if t.kind == "pick":
            return T.lifted(p, self._init_pos[src], held)
        if t.kind == "on":
            return T.on_top(p, self.object_position(self.target), src, self.target, self.table_z, held)
        if t.kind == "in":
            return T.inside(p, self.object_position(self.target), src, self.target, self.table_z, held)
        moved = max(np.linalg.norm(self.object_position(n)[:2] - self._init_pos[n][:2])
                    for n in self.present if n != src)
        return T.near(p, self.object_position(self.target), src, self.table_z, held, moved)

    # --- observations ----------------------------------------------------------------------------
    def state(self) -> np.ndarray:
        s = np.zeros(STATE_DIM, np.float64)
        s[:3] = self.tcp_position()
        s[3:6] = self.tcp_rpy()
        s[6] = self.gripper_opening()
        for n in self.present:
            i = PROPRIO_DIM + PER_OBJECT * OBJECT_NAMES.index(n)
            s[i:i + 3] = self.object_position(n)
            s[i + 3] = 1.0
        return np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def _obs(self) -> dict:
        return {"image": self._render_image() if self.do_render else self._blank.copy(),
                "state": self.state()}

    def _render_image(self) -> np.ndarray:
        if self._renderer is None:
            return self._blank.copy()
        self._update_arm()
        mujoco.mj_kinematics(self.model, self.data)
        self._renderer.update_scene(self.data, camera="main")
        return np.array(self._renderer.render(), dtype=np.uint8, copy=True)

    def _update_arm(self):
        """Place the visual two-link arm between the shoulder and the wrist (analytic IK)."""
        d, (l1, l2) = self.data, self.emb.links
        sh = np.array(self.emb.base)
        tcp = self.tcp_position()
        wrist = tcp + [0, 0, 0.125]
        v = wrist - sh
        dist = float(np.clip(np.linalg.norm(v), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-4))
        u = v / max(np.linalg.norm(v), 1e-9)
        perp = np.array([0.0, 0.0, 1.0]) - u[2] * u
        perp = perp / np.linalg.norm(perp) if np.linalg.norm(perp) > 1e-6 else np.array([1.0, 0, 0])
        a = np.arccos(np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1, 1))
        elbow = sh + l1 * (np.cos(a) * u + np.sin(a) * perp)
        end = sh + dist * u
        for name, p0, p1 in (("arm_upper", sh, elbow), ("arm_fore", elbow, end)):
            d.mocap_pos[self._mocap[name]] = (p0 + p1) / 2
            d.mocap_quat[self._mocap[name]] = rot.quat_z_to(p1 - p0)
        d.mocap_pos[self._mocap["arm_wrist"]] = tcp + [0, 0, 0.1]
        d.mocap_quat[self._mocap["arm_wrist"]] = d.qpos[self._palm_q + 3:self._palm_q + 7]

    def _info(self, success: bool, unstable: bool) -> dict:
        return {"instruction": self.instruction, "success": bool(success), "unstable": bool(unstable),
                "task_id": self.task.task_id, "embodiment": self.emb.name, "seed": self.episode_seed,
                "source": self.source, "target": self.target, "step": self._t}

    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"action must have shape (7,) = [dx, dy, dz, droll, dpitch, dyaw, gripper]; "
                             f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or Inf: {a.tolist()}")
        return a

"""An MJX physics step whose forward kinematics compiles to fast CPU code.

Why this exists: MJX's ``kinematics`` walks the body tree level by level, and XLA's CPU compiler fuses the
whole walk into a few loop fusions. Every body's pose is a product of its parent's pose, and a fusion
recomputes its producers per output element instead of storing them, so the work grows about 4x per level
of the tree. On the arm (a chain 11 bodies deep) one call costs about 11 ms for a single environment and
4.7 s for 256 environments on a 2-core CPU, about 99% of a whole ``mjx.step``; every other stage of the
step costs 1-35 ms for all 256 environments together.

:func:`kinematics` computes the same quantities (MuJoCo's definitions: body frames from the parent's
frame, the body offset and the joints in order; joint anchors and axes; inertial and geom frames) body by
body, and separates consecutive bodies with ``jax.lax.optimization_barrier``, so each pose is computed
once and read by its children. :func:`step` is ``mjx.step`` (``forward`` then the ``implicitfast``
integrator) with that kinematics in place of MJX's, composed from MJX's public stage functions.
tests/test_mjx_step.py checks both against ``mjx.kinematics`` and ``mjx.step``. Large CPU runs of this
step inside nested scans need the XLA flag of :mod:`gcrl_bench.xla_setup`.

Limits: joints hinge, slide, ball and free; no mocap bodies, sites, sensors or tendons (the arm has
none; :func:`check_supported` says so at construction).
"""

from __future__ import annotations

import jax
import jax.numpy as jp
import mujoco
import numpy as np
from brax import math as brax_math
from mujoco import mjx

Array = jax.Array


def check_supported(model: mujoco.MjModel) -> None:
    """Raises ValueError naming the first feature of ``model`` that :func:`step` does not handle."""
    unsupported = {
        "mocap bodies": model.nmocap, "sites": model.nsite, "sensors": model.nsensor, "tendons": model.ntendon,
    }
    for what, count in unsupported.items():
        if count:
            raise ValueError(f"the model has {count} {what}; the fast MJX step supports none")
    if model.opt.integrator != mujoco.mjtIntegrator.mjINT_IMPLICITFAST:
        raise ValueError(f"the fast MJX step integrates with implicitfast only, the model asks for "
                         f"{mujoco.mjtIntegrator(model.opt.integrator).name}")


def _quat_to_mat(q: Array) -> Array:
    """MJX's quaternion-to-matrix formula (brax.math.quat_to_3x3 divides by |q|^2; this keeps MJX's numbers)."""
    w, x, y, z = q
    return jp.stack([
        jp.stack([w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        jp.stack([2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)]),
        jp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]),
    ])


def _normalize(q: Array) -> Array:
    norm = jp.linalg.norm(q)
    return q / jp.where(norm > 0.0, norm, 1.0)


def kinematics(model: mujoco.MjModel, d: mjx.Data) -> mjx.Data:
    """``mjx.kinematics`` for one environment (vmap for many), computed body by body.

    Args:
      model: the host MuJoCo model (its tree and offsets are compile-time constants).
      d: MJX data; reads ``qpos``.

    Returns:
      ``d`` with qpos (free and ball quaternions normalized), xanchor, xaxis, xpos, xquat, xmat, xipos,
      ximat, geom_xpos and geom_xmat set.
    """
    f32 = lambda a: jp.asarray(np.asarray(a), dtype=jp.float32)  # noqa: E731
    qpos = d.qpos
    qpos0 = np.asarray(model.qpos0)
    positions = [jp.zeros(3)]
    quats = [jp.array([1.0, 0.0, 0.0, 0.0])]
    anchors: list[Array] = []
    axes: list[Array] = []
    for b in range(1, model.nbody):
        parent = int(model.body_parentid[b])
        pos = positions[parent] + brax_math.rotate(f32(model.body_pos[b]), quats[parent])
        quat = brax_math.quat_mul(quats[parent], f32(model.body_quat[b]))
        for j in range(int(model.body_jntadr[b]), int(model.body_jntadr[b]) + int(model.body_jntnum[b])):
            kind, adr = int(model.jnt_type[j]), int(model.jnt_qposadr[j])
            jnt_pos, jnt_axis = f32(model.jnt_pos[j]), f32(model.jnt_axis[j])
            if kind == mujoco.mjtJoint.mjJNT_FREE:
                anchors.append(qpos[adr:adr + 3])
                axes.append(jp.array([0.0, 0.0, 1.0]))
                pos = qpos[adr:adr + 3]
                quat = _normalize(qpos[adr + 3:adr + 7])
                qpos = qpos.at[adr + 3:adr + 7].set(quat)
                continue
            anchor = brax_math.rotate(jnt_pos, quat) + pos
            anchors.append(anchor)
            axes.append(brax_math.rotate(jnt_axis, quat))
            if kind == mujoco.mjtJoint.mjJNT_BALL:
                local = _normalize(qpos[adr:adr + 4])
                qpos = qpos.at[adr:adr + 4].set(local)
                quat = brax_math.quat_mul(quat, local)
                pos = anchor - brax_math.rotate(jnt_pos, quat)
            elif kind == mujoco.mjtJoint.mjJNT_HINGE:
                half = 0.5 * (qpos[adr] - qpos0[adr])
                quat = brax_math.quat_mul(quat, jp.concatenate([jp.cos(half)[None], jnt_axis * jp.sin(half)]))
                pos = anchor - brax_math.rotate(jnt_pos, quat)
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE:
                pos = pos + axes[-1] * (qpos[adr] - qpos0[adr])
            else:
                raise ValueError(f"joint {j} has unsupported type {kind}")
        # the barrier makes the children read this pose instead of recomputing it inside their fusions
        pos, quat = jax.lax.optimization_barrier((pos, quat))
        positions.append(pos)
        quats.append(quat)

    xpos, xquat = jp.stack(positions), jp.stack(quats)
    xmat = jax.vmap(_quat_to_mat)(xquat)
    xipos = xpos + jax.vmap(brax_math.rotate)(f32(model.body_ipos), xquat)
    ximat = jax.vmap(_quat_to_mat)(jax.vmap(brax_math.quat_mul)(xquat, f32(model.body_iquat)))
    gbody = np.asarray(model.geom_bodyid)
    geom_xpos = xpos[gbody] + jax.vmap(brax_math.rotate)(f32(model.geom_pos), xquat[gbody])
    geom_xmat = jax.vmap(_quat_to_mat)(jax.vmap(brax_math.quat_mul)(xquat[gbody], f32(model.geom_quat)))
    empty = jp.zeros((0, 3))
    return d.replace(
        qpos=qpos, xanchor=jp.stack(anchors) if anchors else empty, xaxis=jp.stack(axes) if axes else empty,
        xpos=xpos, xquat=xquat, xmat=xmat, xipos=xipos, ximat=ximat, geom_xpos=geom_xpos, geom_xmat=geom_xmat,
    )


def fwd_position(model: mujoco.MjModel, m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """``mjx.fwd_position`` with :func:`kinematics` (the model has no tendons to update)."""
    d = kinematics(model, d)
    d = mjx.com_pos(m, d)
    d = mjx.camlight(m, d)
    d = mjx.crb(m, d)
    d = mjx.factor_m(m, d)
    d = mjx.collision(m, d)
    d = mjx.make_constraint(m, d)
    return mjx.transmission(m, d)


def step(model: mujoco.MjModel, m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """``mjx.step`` for a model that passes :func:`check_supported` (one environment; vmap for many)."""
    d = fwd_position(model, m, d)
    d = mjx.fwd_velocity(m, d)
    d = mjx.fwd_actuation(m, d)
    d = mjx.fwd_acceleration(m, d)
    d = mjx.solve(m, d)
    return mjx.implicit(m, d)

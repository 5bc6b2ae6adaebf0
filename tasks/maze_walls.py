"""Maze walls for brax's spring pipeline: closed-form contacts and the impulse model that resolves them.

The maze tasks (ant and humanoid families) keep wall boxes out of the physics model: brax's spring
pipeline asks ``mjx.collision`` for every geom pair, so every wall box would cost every substep. Instead,
each substep tests the body geoms against the walls of a few nearby cells only (:func:`wall_contacts`),
with closed forms, and resolves those contacts together with brax's own floor contacts by a re-statement
of brax's spring impulse model (:func:`resolve_contacts`, :func:`spring_substep`).

Closed-form contacts between round body geoms and axis-aligned wall boxes
-------------------------------------------------------------------------

MuJoCo's MJX routes sphere-box and capsule-box pairs through its general convex collider, which is by far
the most expensive part of a brax spring step beside a maze wall. A maze wall is an axis-aligned box, and
for that case the same contacts have short closed forms. The functions here reproduce MJX's contact
*convention* for these two pairs (how many contact points, where they sit, which way the normal points),
so the spring impulse model sees the same contacts it would see from ``mjx.collision``:

* sphere vs box: one contact. Closest point on the box by clamping the sphere centre into the box
  (or, for a centre inside the box, the nearest face); the normal points from the sphere into the box.
* capsule vs box: two contact slots. Face contact: the face whose plane separates best; the capsule's
  axis segment is clipped to that face's rectangle (its four side planes) and each clipped end point
  gives one contact with the face normal and the depth of that end point. Edge contact (it replaces the
  first face slot): the box edge nearest to the capsule axis, used when the axis lies in that edge's
  outer region and the edge penetrates less than the face contact would.

All positions are world coordinates; boxes are given by centre and half-sizes (3,), never rotated.
Every function handles one pair; vmap for many. Non-touching pairs report ``dist = 1.0`` (any positive
distance is ignored by the spring impulse model).

Convention of the returned contact (as ``brax.base.Contact`` uses it): ``dist`` < 0 is penetration depth,
``pos`` the midpoint between the two surfaces, ``normal`` the unit vector from the body geom (geom 1)
towards the box (geom 2).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import jax
import jax.numpy as jp
import mujoco
import numpy as np
from brax import actuator, com, kinematics
from brax import math as brax_math
from brax.base import Motion, System
from brax.spring import integrator, joints
from brax.spring.base import State as SpringState
from flax import struct

Array = jax.Array

# Face k of a box: axis FACE_AXIS[k], outward sign FACE_SIGN[k].
FACE_AXIS = np.array([0, 0, 1, 1, 2, 2])
FACE_SIGN = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], np.float32)
_FACE_AXIS_ONE_HOT = np.eye(3, dtype=np.float32)[FACE_AXIS]  # (6, 3)
_NO_CONTACT = 1.0


def _one_hot(index: Array, n: int = 3) -> Array:
    """(n,) float one-hot of an index. Selecting with it (a dot product) instead of indexing keeps the
    contact functions free of gathers and scatters, which are slow when vmapped over many envs on a CPU."""
    return (jp.arange(n) == index).astype(jp.float32)


def _dot3(a: Array, b: Array) -> Array:
    """Dot product over a trailing axis of 3, written out. As a ``dot`` or a ``sum`` it becomes, vmapped over
    many envs, a reduction kernel of its own on XLA's CPU backend, several times slower than these three
    products inside the surrounding elementwise loop."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _nearest_edges(half: Array, toward: Array) -> tuple[Array, Array, Array]:
    """For each axis, the box edge along it that lies in the octant of ``toward`` (box frame).

    A capsule can only be within its radius of an edge if its centre is in that edge's octant (the
    capsule is much shorter than the box), so these three edges replace a search over all twelve.

    Returns:
      start: (3, 3) one end of each edge; end: (3, 3) the other end;
      outward: (3, 2, 3) the outward normals of the two faces that meet at the edge.
    """
    corner = jp.where(toward >= 0.0, half, -half)  # (3,)
    eye = jp.eye(3)
    start = jp.where(eye > 0, -half, corner)  # row k: the corner with coordinate k moved to -h_k
    end = jp.where(eye > 0, half, corner)
    signs = jp.sign(corner)
    other_axes = eye[jp.array([[1, 2], [0, 2], [0, 1]])]  # (3, 2, 3) constant: the two other axes of edge k
    outward = other_axes * _dot3(other_axes, signs)[..., None]  # (3, 2, 3)
    return start, end, outward


def _safe_normalize(v: Array) -> tuple[Array, Array]:
    """(unit vector, norm); a zero vector stays zero instead of becoming NaN."""
    norm = jp.sqrt(_dot3(v, v))
    return v / jp.where(norm > 0.0, norm, 1.0), norm


def sphere_box_contact(center: Array, radius: Array, box_pos: Array, box_half: Array):
    """Contact between a sphere and an axis-aligned box.

    Args:
      center: (3,) sphere centre; radius: () sphere radius.
      box_pos: (3,) box centre; box_half: (3,) box half-sizes.

    Returns:
      dist (), pos (3,), normal (3,).
    """
    p = center - box_pos
    outside = jp.abs(p) - box_half  # per axis, > 0 where the centre is beyond that pair of faces
    separated = jp.any(outside - radius >= 0.0)

    # Centre outside the box: the closest box point is the clamped centre.
    closest = jp.clip(p, -box_half, box_half)
    to_box, gap = _safe_normalize(closest - p)
    # Centre inside (or on) the box: push out through the face it is nearest to.
    axis = _one_hot(jp.argmax(outside))
    sign = jp.where(_dot3(p, axis) >= 0.0, 1.0, -1.0)
    face_normal = axis * sign
    inside = jp.all(outside <= 0.0) | (gap < 1e-6)
    normal = jp.where(inside, -face_normal, to_box)
    depth_to_face = _dot3(outside, axis)  # <= 0 inside: minus the distance to the nearest face
    signed_gap = jp.where(inside, depth_to_face, gap)
    on_face = jp.where(axis > 0, sign * box_half, p)
    closest = jp.where(inside, on_face, closest)

    dist = jp.where(separated, _NO_CONTACT, signed_gap - radius)
    pos = 0.5 * (closest + p + normal * radius) + box_pos
    return dist, pos, normal


def _closest_points_segments(p0: Array, p1: Array, q0: Array, q1: Array) -> tuple[Array, Array]:
    """Closest points between segments p0-p1 and q0-q1 (each (3,)); returns (on p, on q).

    Minimises |p(s) - q(t)|^2 over s, t in [0, 1]: solve for s on the infinite lines, clamp, then take the
    best t for that s and re-clamp s once more (exact for non-degenerate segments).
    """
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = _dot3(d1, d1), _dot3(d2, d2)
    b, c, f = _dot3(d1, d2), _dot3(d1, r), _dot3(d2, r)
    denom = a * e - b * b
    s = jp.where(denom > 1e-9 * a * e, jp.clip((b * f - c * e) / jp.where(denom > 0, denom, 1.0), 0.0, 1.0), 0.0)
    t = (b * s + f) / jp.maximum(e, 1e-12)
    t_clamped = jp.clip(t, 0.0, 1.0)
    s = jp.where(t == t_clamped, s, jp.clip((b * t_clamped - c) / jp.maximum(a, 1e-12), 0.0, 1.0))
    return p0 + s * d1, q0 + t_clamped * d2


def capsule_box_contacts(
    center: Array, axis: Array, half_length: Array, radius: Array, box_pos: Array, box_half: Array
):
    """Up to two contacts between a capsule and an axis-aligned box.

    Args:
      center: (3,) capsule centre; axis: (3,) unit axis; half_length: () half-length of the axis segment;
      radius: () capsule radius; box_pos: (3,) box centre; box_half: (3,) box half-sizes.

    Returns:
      dist (2,), pos (2, 3), normal (2, 3).
    """
    c = center - box_pos
    ends = jp.stack([c - axis * half_length, c + axis * half_length])  # (2, 3), box frame

    # Face separation: for each face, the deepest capsule point's signed distance to the face plane.
    along = ends[:, FACE_AXIS] * FACE_SIGN  # (2, 6)
    support = jp.minimum(along[0], along[1]) - radius - box_half[FACE_AXIS]
    overlapping = jp.all(support < 0.0)
    face = _one_hot(jp.argmax(support), 6)
    sign = face @ FACE_SIGN
    k = face @ _FACE_AXIS_ONE_HOT  # (3,) one-hot of the face's axis
    face_normal = k * sign

    # Clip the axis segment to the face rectangle: the two side slabs |x_m| <= h_m, m != k.
    direction = ends[1] - ends[0]
    side = k == 0
    safe_dir = jp.where(jp.abs(direction) > 1e-9, direction, 1e-9)
    t_a = (-box_half - ends[0]) / safe_dir
    t_b = (box_half - ends[0]) / safe_dir
    t_enter = jp.where(side, jp.minimum(t_a, t_b), -jp.inf)
    t_leave = jp.where(side, jp.maximum(t_a, t_b), jp.inf)
    # An end point beyond a side plane while the segment runs parallel to it: the slab is never entered.
    never = side & (jp.abs(direction) <= 1e-9) & (jp.abs(ends[0]) > box_half)
    t_lo = jp.clip(jp.max(t_enter), 0.0, 1.0)
    t_hi = jp.clip(jp.min(t_leave), 0.0, 1.0)
    clipped_ok = (jp.max(t_enter) <= jp.min(t_leave)) & ~jp.any(never)
    clipped = ends[0] + jp.stack([t_lo, t_hi])[:, None] * direction  # (2, 3)

    face_depth = radius + _dot3(box_half, k) - _dot3(clipped, k) * sign  # penetration of each clipped end point
    face_depth = jp.where(clipped_ok & overlapping, face_depth, -1.0)
    deepest = clipped - face_normal * radius
    face_pos = jp.where(k > 0, 0.5 * (deepest + sign * box_half), deepest)
    face_normals = jp.broadcast_to(-face_normal, (2, 3))

    # Edge contact: the box edge nearest to the capsule axis.
    e_start, e_end, e_outward = _nearest_edges(box_half, c)
    on_cap, on_edge = jax.vmap(_closest_points_segments, in_axes=(None, None, 0, 0))(ends[0], ends[1], e_start, e_end)
    gaps = jp.sqrt(_dot3(on_edge - on_cap, on_edge - on_cap))
    e = _one_hot(jp.argmin(gaps))
    on_edge, on_cap = e @ on_edge, e @ on_cap
    edge_axis, edge_gap = _safe_normalize(on_edge - on_cap)
    degenerate = edge_gap**2 < 1e-6
    in_edge_region = jp.all(jp.einsum("e,eij,j->i", e, e_outward, edge_axis) < 0.0)
    edge_depth = jp.where(~degenerate & in_edge_region, radius - edge_gap, -1.0)
    along_face_normal = (jp.abs(_dot3(edge_axis, face_normal)) > 0.99) & ~degenerate
    min_face_depth = jp.min(face_depth)
    use_edge = (
        (edge_depth > 0.0)
        & jp.where(min_face_depth > 0.0, edge_depth < min_face_depth, True)
        & ~along_face_normal
        & in_edge_region
    )
    edge_pos = 0.5 * (on_edge + on_cap + edge_axis * radius)

    dist = jp.where(use_edge, jp.array([-edge_depth, _NO_CONTACT]), -face_depth)
    pos = jp.where(use_edge, face_pos.at[0].set(edge_pos), face_pos) + box_pos
    normal = jp.where(use_edge, face_normals.at[0].set(edge_axis), face_normals)
    return dist, pos, normal


def nearby_cells(xy: Array, cell_size: float) -> Array:
    """The 2x2 block of maze cells nearest to a point: (4, 2) integer (row, col) indices.

    Row i covers world x in [cell_size * (i - 1/2), cell_size * (i + 1/2)], column j the same in y. Any
    point within cell_size / 2 of ``xy`` lies in one of these four cells.
    """
    scaled = xy / cell_size
    own = jp.round(scaled)
    other = own + jp.where(scaled >= own, 1.0, -1.0)
    rows = jp.stack([own[0], own[0], other[0], other[0]])
    cols = jp.stack([own[1], other[1], own[1], other[1]])
    return jp.stack([rows, cols], axis=-1).astype(jp.int32)


# ------------------------------------------------------------------------------------- contact model


@struct.dataclass
class SpringContact:
    """Contacts as the spring impulse model reads them; leading axis = contact.

    Attributes:
      dist: (C,) signed distance, < 0 when penetrating.
      pos: (C, 3) contact point (world).
      normal: (C, 3) unit normal pointing from the geom of ``link1`` towards the geom of ``link2``.
      friction: (C,) sliding friction coefficient.
      elasticity: (C,) restitution.
      link1, link2: (C,) int link indices, -1 for the world.
    """

    dist: Array
    pos: Array
    normal: Array
    friction: Array
    elasticity: Array
    link1: Array
    link2: Array

    @staticmethod
    def from_brax(c) -> "SpringContact":
        return SpringContact(
            dist=c.dist, pos=c.pos, normal=c.frame[:, 0], friction=c.friction[:, 0], elasticity=c.elasticity,
            link1=c.link_idx[0], link2=c.link_idx[1],
        )


def resolve_contacts(sys: System, state: SpringState, c: SpringContact, world: SpringContact | None = None) -> Motion:
    """Velocity change of every link's centre of mass from the contacts (brax's spring contact model).

    For each penetrating contact (dist < 0) whose bodies approach each other, a normal impulse

        j = (-(1 + e) v_n - erp / dt * dist) / (1/m_1 + 1/m_2 + n . sum_k [(I_k^-1 (r_k x n)) x r_k])

    removes the approach velocity v_n (n-component of the relative velocity at the contact point) and
    pushes the bodies apart in proportion to the depth (Baumgarte term, erp = sys.baumgarte_erp). A
    friction impulse along the sliding direction t cancels the tangential speed, capped at mu * j. Each
    link receives the impulses of its contacts (opposite signs for the two sides), averaged over its
    active contacts, then converted to velocity with the link's mass and inverse inertia.

    One quirk is kept on purpose, because it is the physics brax (and so the reference) runs: inside the
    impulse denominators brax reads the inverse inertia with ``Array.take(link)`` on the (L, 3, 3) array,
    which indexes the *flattened* array, so I_k^-1 above is the scalar ``i_inv.reshape(-1)[link_k]``
    (an entry of the torso's inverse inertia for every link). The final velocity change uses the real
    per-link 3x3 inverse inertia.

    Args:
      sys: the brax system. state: spring state after the acceleration update (uses x_i, xd_i, i_inv, mass).
      c: contacts between two links or a link and the world, (C,) leading axis.
      world: optional contacts whose second side is the world (``link2`` all -1, ``link1`` a static numpy
        array), such as maze walls; they are resolved with only one body, which gives the same numbers
        as passing them in ``c`` at about half the cost.

    Returns:
      Motion (num_links,) velocity change at each link's centre of mass.
    """
    num_links = sys.num_links()
    lin, active = _contact_impulses(sys, state, c, jp.stack([c.link1, c.link2], axis=1))
    # +lin on link1, -lin on link2; the world (-1) is parked in an extra segment and dropped.
    lins, poss = [lin, -lin], [c.pos, c.pos]
    segs, actives = [c.link1, c.link2], [active, active]
    if world is not None:
        w_lin, w_active = _contact_impulses(sys, state, world, jp.asarray(world.link1)[:, None], brax_sums=False)
        lins.append(w_lin)
        poss.append(world.pos)
        segs.append(jp.asarray(world.link1))
        actives.append(w_active)
    lin_all, pos_all = jp.concatenate(lins), jp.concatenate(poss)
    seg = jp.concatenate(segs)
    seg = jp.where(seg > -1, seg, num_links)
    # Per-link sums as a product with the (links, contacts) membership matrix: the link of every contact
    # slot is fixed by the model, so the matrix is a constant and this avoids a scatter per env.
    member = (jp.arange(num_links)[:, None] == seg[None, :]).astype(lin_all.dtype)  # (L, C)
    ang_all = jp.cross(pos_all - member.T @ state.x_i.pos, lin_all)
    lin_sum = member @ lin_all
    ang_sum = member @ ang_all
    count = member @ jp.concatenate(actives).astype(jp.float32)
    scale = 1.0 / (count + 1e-8)
    lin_sum, ang_sum = lin_sum * scale[:, None], ang_sum * scale[:, None]
    return Motion(
        vel=lin_sum / state.mass[:, None],
        ang=_matvec(state.i_inv, ang_sum),
    )


def _contact_impulses(
    sys: System, state: SpringState, c: SpringContact, links, brax_sums: bool = True
) -> tuple[Array, Array]:
    """Impulse on the first body of each contact, (C, 3), and whether the contact is active, (C,).

    ``links`` is (C, 2) for contacts between two links (-1 = world) or (C, 1) for contacts with the world.
    ``brax_sums`` computes the dot products and norms with the reductions brax's spring step uses, so the
    floor contacts match that step (contacts are chaotic: a rounding difference grows to centimetres within
    a few hundred substeps; tests/test_ant_maze.py compares at 1e-5); without it they are written out
    (:func:`_dot3`), which is faster on a CPU and equal up to rounding.
    """
    if brax_sums:
        dot, norm = (lambda a, b: jp.sum(a * b, axis=-1)), jax.vmap(brax_math.safe_norm)
    else:
        dot, norm = _dot3, (lambda v: jp.sqrt(_dot3(v, v)))
    real = links > -1
    idx = jp.where(real, links, 0)
    inv_mass = jp.where(real, 1.0 / state.mass[idx], 0.0)  # (C, K)
    i_inv = state.i_inv.reshape(-1)[idx] * real  # (C, K) scalars: brax's flattened read, see docstring
    arm = c.pos[:, None, :] - state.x_i.pos[idx]  # (C, K, 3) contact point relative to each com
    point_vel = state.xd_i.vel[idx] + jp.cross(state.xd_i.ang[idx], arm)
    point_vel = point_vel * real[..., None]
    two_sided = links.shape[1] == 2
    rel_vel = point_vel[:, 0] - point_vel[:, 1] if two_sided else point_vel[:, 0]  # (C, 3)
    inv_mass_sum = inv_mass[:, 0] + inv_mass[:, 1] if two_sided else inv_mass[:, 0]

    def rotational_inertia(direction):  # (C, 3) -> (C,): direction . sum_k (I_k^-1 (r_k x d)) x r_k
        w = i_inv[..., None] * jp.cross(arm, direction[:, None, :])
        return dot(direction, jp.sum(jp.cross(w, arm), axis=1))

    push = -c.normal  # the direction geom 1 is pushed
    normal_vel = dot(push, rel_vel)
    baumgarte = sys.baumgarte_erp / sys.opt.timestep * c.dist
    impulse = (-(1.0 + c.elasticity) * normal_vel - baumgarte) / (inv_mass_sum + rotational_inertia(push))

    slide = rel_vel + normal_vel[:, None] * c.normal  # tangential part of the relative velocity
    slide_speed = norm(slide)
    slide_dir = slide / (1e-6 + slide_speed)[:, None]
    drag = slide_speed / (inv_mass_sum + rotational_inertia(slide_dir))
    drag = jp.minimum(drag, c.friction * impulse)

    active = (c.dist < 0.0) & (normal_vel < 0.0) & (impulse > 0.0)
    sliding = active & (slide_speed > 1e-3)
    lin = (impulse[:, None] * push) * active[:, None] + (-drag[:, None] * slide_dir) * sliding[:, None]
    return lin, active


def _matvec(m: Array, v: Array) -> Array:
    """(N, 3, 3) @ (N, 3) -> (N, 3)."""
    return jp.einsum("nij,nj->ni", m, v)


# ------------------------------------------------------------------------------------- wall contacts


@dataclasses.dataclass(frozen=True)
class BodyGeoms:
    """Static table of the body geoms that collide with walls (contype or conaffinity bit 1).

    Attributes:
      spheres, capsules: (S,), (C,) geom ids.
      sphere_radius: (S,); capsule_radius, capsule_half_length: (C,).
      sphere_friction, capsule_friction: friction of each geom's wall contacts (MuJoCo combines the two
        geoms' frictions with max).
      sphere_elasticity, capsule_elasticity: restitution of each geom's wall contacts (brax averages the
        two geoms' elasticities; walls have 0).
    """

    spheres: np.ndarray
    capsules: np.ndarray
    sphere_radius: np.ndarray
    capsule_radius: np.ndarray
    capsule_half_length: np.ndarray
    sphere_friction: np.ndarray
    capsule_friction: np.ndarray
    sphere_elasticity: np.ndarray
    capsule_elasticity: np.ndarray

    @property
    def extent(self) -> float:
        """Largest distance from a geom's centre to a point of the geom (m)."""
        return float(max([0.0, *self.sphere_radius, *(self.capsule_half_length + self.capsule_radius)]))


def body_geoms(mj_model: mujoco.MjModel, sys: System, wall_friction: float) -> BodyGeoms:
    """The geoms that a wall box (contype 1, conaffinity 1) collides with, split by shape.

    Raises:
      ValueError: a wall-colliding geom is neither a sphere nor a capsule.
    """
    wall_bits = 1
    spheres, capsules = [], []
    for g in range(mj_model.ngeom):
        if mj_model.geom_bodyid[g] == 0:
            continue  # world geoms never collide with other world geoms
        hits = (mj_model.geom_contype[g] & wall_bits) or (mj_model.geom_conaffinity[g] & wall_bits)
        if not hits:
            continue
        kind = mj_model.geom_type[g]
        if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
            spheres.append(g)
        elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
            capsules.append(g)
        else:
            raise ValueError(f"geom {g} of type {kind} collides with walls; only spheres and capsules are supported")
    spheres, capsules = np.array(spheres, dtype=int), np.array(capsules, dtype=int)
    elasticity = np.asarray(sys.elasticity)  # walls have brax's default elasticity 0
    return BodyGeoms(
        spheres=spheres,
        capsules=capsules,
        sphere_radius=mj_model.geom_size[spheres, 0],
        capsule_radius=mj_model.geom_size[capsules, 0],
        capsule_half_length=mj_model.geom_size[capsules, 1],
        sphere_friction=np.maximum(mj_model.geom_friction[spheres, 0], wall_friction),
        capsule_friction=np.maximum(mj_model.geom_friction[capsules, 0], wall_friction),
        sphere_elasticity=0.5 * elasticity[spheres],
        capsule_elasticity=0.5 * elasticity[capsules],
    )


def geom_world(sys: System, x, geom_ids: np.ndarray) -> tuple[Array, Array]:
    """World position (G, 3) and rotation quaternion (G, 4) of the given geoms."""
    link = np.asarray(sys.geom_bodyid)[geom_ids] - 1
    link_pos, link_rot = x.pos[link], x.rot[link]
    pos = link_pos + jax.vmap(brax_math.rotate)(jp.asarray(sys.geom_pos)[geom_ids], link_rot)
    rot = jax.vmap(brax_math.quat_mul)(link_rot, jp.asarray(sys.geom_quat)[geom_ids])
    return pos, rot


def wall_grid(layout, wall_mark: str = "#") -> np.ndarray:
    """(rows + 2, cols + 2) bool: True at the layout's wall cells, padded by one free cell on every side."""
    grid = np.zeros((len(layout) + 2, max((len(r) for r in layout), default=0) + 2), dtype=bool)
    for i, row in enumerate(layout):
        for j, mark in enumerate(row):
            grid[i + 1, j + 1] = mark == wall_mark
    return grid


WallAnchor = Literal["torso", "geom"]


def wall_contacts(
    sys: System, geoms: BodyGeoms, grid: Array, x, cell_size: float, wall_half_size: Sequence[float],
    anchor: WallAnchor = "torso",
) -> SpringContact:
    """Contacts of the wall-colliding geoms with the walls of nearby cells.

    Every geom is tested against the four cells of a 2x2 block (:func:`nearby_cells`): with
    ``anchor="torso"`` the block nearest to the root link's origin (shared by all geoms: correct when every
    geom point lies within cell_size / 2 of it), with ``anchor="geom"`` the block nearest to each geom's
    own centre (correct when every geom's extent, half-length plus radius, is below cell_size / 2).

    Args:
      sys: the brax system (without walls). geoms: static geom table.
      grid: (rows + 2, cols + 2) bool, see :func:`wall_grid`.
      x: link transforms (world).
      cell_size: cell edge (m); wall_half_size: (3,) half-sizes of a wall box resting on the floor.
      anchor: which point picks the cells (see above).

    Returns:
      SpringContact with 4 * (S + 2 C) contacts, slot-major: contact ``b * (S + 2 C) + k`` is geom slot k
      (spheres, then two per capsule) against the b-th cell of its block; free cells report dist = 1.
    """
    s_pos, _ = geom_world(sys, x, geoms.spheres)
    c_pos, c_rot = geom_world(sys, x, geoms.capsules)
    c_axis = jax.vmap(brax_math.rotate, in_axes=(None, 0))(jp.array([0.0, 0.0, 1.0]), c_rot)
    half = jp.asarray(wall_half_size, dtype=jp.float32)

    if anchor == "geom":
        s_cells = jax.vmap(nearby_cells, in_axes=(0, None))(s_pos[:, :2], cell_size)  # (S, 4, 2)
        c_cells = jax.vmap(nearby_cells, in_axes=(0, None))(c_pos[:, :2], cell_size)  # (C, 4, 2)
    elif anchor == "torso":
        near = nearby_cells(x.pos[0, :2], cell_size)
        s_cells = jp.broadcast_to(near, (s_pos.shape[0], 4, 2))
        c_cells = jp.broadcast_to(near, (c_pos.shape[0], 4, 2))
    else:
        raise ValueError(f"anchor must be 'torso' or 'geom', got {anchor!r}")

    def boxes(cells):  # (N, 4, 2) -> box centres (N, 4, 3), is-wall (N, 4)
        padded = jp.clip(cells + 1, 0, jp.array(grid.shape) - 1)
        is_wall = jp.asarray(grid)[padded[..., 0], padded[..., 1]]
        z = jp.full(cells.shape[:-1] + (1,), half[2])
        return jp.concatenate([cells.astype(jp.float32) * cell_size, z], axis=-1), is_wall

    s_box, s_wall = boxes(s_cells)
    c_box, c_wall = boxes(c_cells)
    sphere = jax.vmap(jax.vmap(sphere_box_contact, in_axes=(None, None, 0, None)), in_axes=(0, 0, 0, None))
    sd, sp, sn = sphere(s_pos, jp.asarray(geoms.sphere_radius), s_box, half)  # (S, 4), (S, 4, 3)
    capsule = jax.vmap(jax.vmap(capsule_box_contacts, in_axes=(None, None, None, None, 0, None)),
                       in_axes=(0, 0, 0, 0, 0, None))
    cd, cp, cn = capsule(c_pos, c_axis, jp.asarray(geoms.capsule_half_length), jp.asarray(geoms.capsule_radius),
                         c_box, half)  # (C, 4, 2), (C, 4, 2, 3)
    sd = jp.where(s_wall, sd, _NO_CONTACT)
    cd = jp.where(c_wall[..., None], cd, _NO_CONTACT)

    def slot_major(s, c):  # (S, 4, ...) and (C, 4, 2, ...) -> (4 * (S + 2C), ...)
        s = jp.swapaxes(s, 0, 1)
        c = jp.swapaxes(c, 0, 1)
        c = c.reshape((4, -1) + c.shape[3:])
        return jp.concatenate([s, c], axis=1).reshape((-1,) + s.shape[2:])

    n_boxes = 4
    geom_bodyid = np.asarray(sys.geom_bodyid)
    link1 = np.concatenate([geom_bodyid[geoms.spheres] - 1, np.repeat(geom_bodyid[geoms.capsules] - 1, 2)])
    friction = np.concatenate([geoms.sphere_friction, np.repeat(geoms.capsule_friction, 2)])
    elasticity = np.concatenate([geoms.sphere_elasticity, np.repeat(geoms.capsule_elasticity, 2)])
    return SpringContact(
        dist=slot_major(sd, cd),
        pos=slot_major(sp, cp),
        normal=slot_major(sn, cn),
        friction=jp.asarray(np.tile(friction, n_boxes), dtype=jp.float32),
        elasticity=jp.asarray(np.tile(elasticity, n_boxes), dtype=jp.float32),
        link1=np.tile(link1, n_boxes).astype(np.int32),
        link2=np.full((n_boxes * link1.size,), -1, dtype=np.int32),
    )


def spring_substep(sys: System, state: SpringState, act: Array, contacts) -> SpringState:
    """One spring physics step with externally supplied contacts.

    The sequence is brax's spring step: actuator and joint forces at acceleration level, a semi-implicit
    velocity update, contact impulses, integration, then joint coordinates recovered from the new link
    transforms. ``contacts(x)`` returns the contact arguments of :func:`resolve_contacts` as a tuple
    ``(c,)`` or ``(c, world)``.
    """
    if sys.enable_fluid:
        raise ValueError("fluid forces are not supported by the maze substep; the maze models have none")
    state = state.replace(i_inv=com.inv_inertia(sys, state.x))
    tau = actuator.to_tau(sys, act, state.q, state.qd)
    xf_i = joints.resolve(sys, state, tau)
    xdd_i = Motion.create(vel=sys.gravity) + Motion(
        ang=_matvec(state.i_inv, xf_i.ang), vel=xf_i.vel / state.mass[:, None]
    )
    state = state.replace(xd_i=state.xd_i + xdd_i * sys.opt.timestep)
    xdv_i = resolve_contacts(sys, state, *contacts(state.x))
    x_i, xd_i = integrator.integrate(sys, state.x_i, state.xd_i, xdv_i)
    x, xd = com.to_world(sys, x_i, xd_i)
    j, jd, a_p, a_c = kinematics.world_to_joint(sys, x, xd)
    q, qd = kinematics.inverse(sys, j, jd)
    return state.replace(x=x, xd=xd, x_i=x_i, xd_i=xd_i, q=q, qd=qd, j=j, jd=jd, a_p=a_p, a_c=a_c)



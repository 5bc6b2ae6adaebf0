"""Closed-form contacts between round body geoms and axis-aligned wall boxes.

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

import jax
import jax.numpy as jp

Array = jax.Array

# Face k of a box: axis FACE_AXIS[k], outward sign FACE_SIGN[k].
FACE_AXIS = jp.array([0, 0, 1, 1, 2, 2])
FACE_SIGN = jp.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
_NO_CONTACT = 1.0


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
    others = jp.array([[1, 2], [0, 2], [0, 1]])
    outward = eye[others] * signs[others][..., None]  # (3, 2, 3)
    return start, end, outward


def _safe_normalize(v: Array) -> tuple[Array, Array]:
    """(unit vector, norm); a zero vector stays zero instead of becoming NaN."""
    norm = jp.sqrt(jp.sum(v * v))
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
    axis = jp.argmax(outside)
    sign = jp.where(p[axis] >= 0.0, 1.0, -1.0)
    face_normal = jp.zeros(3).at[axis].set(sign)
    inside = jp.all(outside <= 0.0) | (gap < 1e-6)
    normal = jp.where(inside, -face_normal, to_box)
    depth_to_face = outside[axis]  # <= 0 inside: minus the distance to the nearest face
    signed_gap = jp.where(inside, depth_to_face, gap)
    on_face = p.at[axis].set(sign * box_half[axis])
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
    a, e = jp.dot(d1, d1), jp.dot(d2, d2)
    b, c, f = jp.dot(d1, d2), jp.dot(d1, r), jp.dot(d2, r)
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
    support = jp.min(along, axis=0) - radius - box_half[FACE_AXIS]
    overlapping = jp.all(support < 0.0)
    face = jp.argmax(support)
    k, sign = FACE_AXIS[face], FACE_SIGN[face]
    face_normal = jp.zeros(3).at[k].set(sign)

    # Clip the axis segment to the face rectangle: the two side slabs |x_m| <= h_m, m != k.
    direction = ends[1] - ends[0]
    side = jp.arange(3) != k
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

    face_depth = radius + box_half[k] - clipped[:, k] * sign  # penetration of each clipped end point
    face_depth = jp.where(clipped_ok & overlapping, face_depth, -1.0)
    deepest = clipped - face_normal * radius
    face_pos = deepest.at[:, k].set(0.5 * (deepest[:, k] + sign * box_half[k]))
    face_normals = jp.broadcast_to(-face_normal, (2, 3))

    # Edge contact: the box edge nearest to the capsule axis.
    e_start, e_end, e_outward = _nearest_edges(box_half, c)
    on_cap, on_edge = jax.vmap(_closest_points_segments, in_axes=(None, None, 0, 0))(ends[0], ends[1], e_start, e_end)
    gaps = jp.sqrt(jp.sum((on_edge - on_cap) ** 2, axis=-1))
    e = jp.argmin(gaps)
    edge_axis, edge_gap = _safe_normalize(on_edge[e] - on_cap[e])
    degenerate = edge_gap**2 < 1e-6
    in_edge_region = jp.all(e_outward[e] @ edge_axis < 0.0)
    edge_depth = jp.where(~degenerate & in_edge_region, radius - edge_gap, -1.0)
    along_face_normal = (jp.abs(edge_axis @ face_normal) > 0.99) & ~degenerate
    min_face_depth = jp.min(face_depth)
    use_edge = (
        (edge_depth > 0.0)
        & jp.where(min_face_depth > 0.0, edge_depth < min_face_depth, True)
        & ~along_face_normal
        & in_edge_region
    )
    edge_pos = 0.5 * (on_edge[e] + on_cap[e] + edge_axis * radius)

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

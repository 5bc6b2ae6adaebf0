"""Per-layer and representation diagnostics of every network, computed once per epoch on one probe batch.

At the end of each compiled epoch the loop (:meth:`gcrl_bench.training.Trainer.epoch`) samples ONE probe
batch of ``batch_size`` relabelled tuples from the replay buffer, from a key folded out of the loop's key
(the loop's own random stream is not advanced, so a run's results are the same with diagnostics on or
off), and calls the algorithm's ``diagnostics(config, previous, state, batch, key)`` (see
:class:`gcrl_bench.interface.Algorithm`): ``previous`` is the algorithm state at the start of the epoch,
``state`` the one at its end. Gradients are those of the algorithm's own losses at ``state`` on the probe
batch (no parameter is changed). The runner writes every statistic to metrics.jsonl each epoch, as
``diag/<network>/<group>/<statistic>`` (:func:`flatten`), and the run's summary.json holds the
:func:`run_warnings` of the last epoch. ``gcrl-bench run --no-diagnostics`` switches all of it off.

Networks: ``actor`` (every algorithm), ``sa_encoder`` and ``goal_encoder`` (CRL's phi and psi),
``critic_0`` and ``critic_1`` (the twin critics of SAC and TD3). Groups of a
:class:`gcrl_bench.networks.ResidualMLP`: ``input`` (the first Dense -> LayerNorm -> act unit),
``block_000`` ... ``block_NNN`` (the depth/4 residual blocks, in order from the input) and ``output``
(the last Dense). Norms are L2 norms over every parameter of the group (kernels, biases, LayerNorm
scales and biases).

================================  =========================================================================
statistic (groups)                definition
================================  =========================================================================
grad_norm (all)                   ||dL/dtheta_group|| of the network's own loss on the probe batch, at the
                                  parameters at the end of the epoch (CRL: the critic's contrastive loss
                                  for the encoders, the actor loss for the actor; SAC/TD3: the TD loss for
                                  the critics, the actor loss for the actor; GCSL/GCBC: the policy loss).
param_norm (all)                  ||theta_group|| at the end of the epoch.
update_ratio (all)                ||theta_group(end) - theta_group(start)|| / ||theta_group(start)||: how far
                                  the epoch moved the group, relative to its size.
input_norm (blocks)               mean over the probe batch of ||x_b||, x the block's input (B, width).
branch_norm (blocks)              mean over the probe batch of ||h_b||, h the output of the block's fourth
                                  unit, i.e. the residual branch added to x.
branch_ratio (blocks)             branch_norm / input_norm.
act_mean, act_std (blocks)        mean and standard deviation of the outputs of the block's four units
                                  (after the activation), over the probe batch, the 4 units and the width.
dead_fraction (blocks)            fraction of the block's 4 x width units that are dead on the whole probe
                                  batch: pre-activation (the activation's input: the LayerNorm output, or the
                                  Dense output without LayerNorm) below DEAD_THRESHOLD[activation] on every
                                  row (swish: -3, where swish(x) > -0.15 and swish'(x) > -0.09; relu: 0);
                                  for tanh, |pre-activation| > 3 on every row (saturated, tanh' < 0.01).
repr_norm_mean, repr_norm_max     mean and max over the probe batch of ||phi_b|| (sa_encoder) or ||psi_b||
  (sa_encoder/goal_encoder        (goal_encoder), the (B, repr_dim) representations.
  output)
effective_rank (sa_encoder/       exp of the entropy of the normalised singular values p_i = s_i / sum_j s_j
  goal_encoder output)            of the (B, repr_dim) representations (Roy and Vetterli 2007): 1 for a
                                  rank-1 batch, k for k orthogonal directions of equal size.
mean_pairwise_cosine              mean over pairs i != k of cos(psi_i, psi_k) (goal_encoder output).
  (goal_encoder output)
entropy (actor output)            -mean_b log pi(a~_b | s_b, g_b) of fresh samples a~ (stochastic actors).
log_std_mean (actor output)       mean of the policy's log-std over the batch and the action dimensions
                                  (stochastic actors; it lies in [-5, 2]).
q_mean, q_std (critic_i           mean and standard deviation over the valid tuples (mask 1) of
  output)                         Q_i(s, a, g) on the probe batch (SAC, TD3).
td_error (critic_i output)        mean over the valid tuples of |Q_i(s, a, g) - y|, y the algorithm's TD
                                  target.
================================  =========================================================================

Warnings (:func:`run_warnings`, summary.json ``warnings``), each on the last epoch's row:

- representation collapse: an ``effective_rank`` below COLLAPSE_RANK = 1.5 (the batch's representations
  lie close to one direction);
- vanishing or exploding gradients: ``block_000/grad_norm`` / ``block_NNN/grad_norm`` (first over last
  block; networks with two or more blocks) above GRADIENT_RATIO_BOUND = 1e3 (exploding: the gradient
  grows a thousandfold on its way back to the input) or below 1 / GRADIENT_RATIO_BOUND (vanishing);
- policy entropy collapse: an actor's ``log_std_mean`` below ENTROPY_COLLAPSE_LOG_STD = -4.5, within
  0.5 of the floor -5 of the log-std squashing (std < 0.011 in every dimension on average).

Every function here is pure; shapes: B = probe batch size, N = number of residual blocks.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench.networks import _ACTIVATIONS, LOG_STD_MIN, UNITS_PER_BLOCK, NetworkConfig

Array = jax.Array
PyTree = Any

PREFIX = "diag/"
# A pre-activation below this on every row of the probe batch makes a unit dead (module docstring).
DEAD_THRESHOLD: dict[str, float] = {"swish": -3.0, "relu": 0.0}
# tanh units are dead (saturated) when |pre-activation| exceeds this on every row.
TANH_SATURATION = 3.0
COLLAPSE_RANK = 1.5
GRADIENT_RATIO_BOUND = 1e3
ENTROPY_COLLAPSE_LOG_STD = LOG_STD_MIN + 0.5
# Denominators of ratios are at least this, so that a zero norm gives a large finite ratio, not NaN.
_TINY = 1e-30
GROUPS_OF_BLOCKS = "blocks"  # the stacked (N,) key of the per-block statistics before :func:`flatten`


# ---------------------------------------------------------------------------------------------------------
# Parameter statistics


def tree_norm(tree: PyTree) -> Array:
    """() L2 norm of every leaf of ``tree`` together: sqrt(sum of squares). Example: {a: [3], b: [4]} -> 5."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves)) if leaves else jnp.zeros(())


def _stacked_norm(tree: PyTree) -> Array:
    """(N,) L2 norm per index of the leading axis of every leaf (the block axis of ``blocks``)."""
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.reshape(x.shape[0], -1)), axis=1) for x in leaves))


def group_norms(params: PyTree) -> dict[str, Array]:
    """Norms of the groups of one ResidualMLP's variables (``{"params": {...}}`` or its inner dict).

    Returns:
      ``{"input": (), "blocks": (N,), "output": ()}``; ``blocks[i]`` is the norm of block i's parameters.
    """
    p = params["params"] if "params" in params else params
    return {"input": tree_norm(p["input"]), GROUPS_OF_BLOCKS: _stacked_norm(p["blocks"]),
            "output": tree_norm(p["output"])}


def parameter_statistics(name: str, before: PyTree, after: PyTree, grads: PyTree) -> dict[str, Array]:
    """grad_norm, param_norm and update_ratio of every group of one network (module docstring).

    Args:
      name: the network's name, e.g. ``"actor"``.
      before, after: the network's variables at the start and at the end of the epoch.
      grads: the gradient of its loss with respect to ``after`` (same structure).
    Returns:
      ``{"<name>/<group>/<stat>": array}``, () for ``input``/``output``, (N,) for ``blocks``.
    """
    g, p_after = group_norms(grads), group_norms(after)
    p_before = group_norms(before)
    moved = group_norms(jax.tree.map(lambda a, b: a - b, after, before))
    out = {}
    for group in p_after:
        out[f"{name}/{group}/grad_norm"] = g[group]
        out[f"{name}/{group}/param_norm"] = p_after[group]
        out[f"{name}/{group}/update_ratio"] = moved[group] / jnp.maximum(p_before[group], _TINY)
    return out


# ---------------------------------------------------------------------------------------------------------
# Forward statistics: the network re-applied layer by layer


def _unit(config: NetworkConfig, p: PyTree, x: Array) -> tuple[Array, Array]:
    """One Dense -> [LayerNorm] -> act unit with its variables ``p`` (``{"Dense_0": ..., "LayerNorm_0": ...}``),
    applied with the same flax layers as the network: ``(pre-activation, output)``, both (B, width)."""
    h = nn.Dense(p["Dense_0"]["kernel"].shape[-1]).apply({"params": p["Dense_0"]}, x)
    if config.layer_norm:
        h = nn.LayerNorm().apply({"params": p["LayerNorm_0"]}, h)
    return h, _ACTIVATIONS[config.activation](h)


def _dead(config: NetworkConfig, pre: Array) -> Array:
    """(width,) bool: units whose pre-activation (B, width) is dead on every row (module docstring)."""
    if config.activation == "tanh":
        return jnp.all(jnp.abs(pre) > TANH_SATURATION, axis=0)
    return jnp.all(pre < DEAD_THRESHOLD[config.activation], axis=0)


def _mean_row_norm(x: Array) -> Array:
    return jnp.mean(jnp.linalg.norm(x, axis=-1))


def forward_statistics(name: str, config: NetworkConfig, params: PyTree, x: Array) -> tuple[Array, dict[str, Array]]:
    """Re-applies a ResidualMLP layer by layer on the probe inputs and measures every residual block.

    The training forward pass is untouched: this is a separate pure function of the same variables, whose
    output equals ``ResidualMLP(config, out_dim).apply(params, x)``.

    Args:
      name: the network's name.
      config: the network's NetworkConfig.
      params: its variables, ``{"params": {"input", "blocks", "output"}}``.
      x: (B, in_dim) probe inputs.
    Returns:
      ``(output (B, out_dim), stats)``, stats ``{"<name>/blocks/<stat>": (N,)}`` for input_norm,
      branch_norm, branch_ratio, act_mean, act_std, dead_fraction.
    """
    p = params["params"] if "params" in params else params
    _, h = _unit(config, p["input"], x)

    def block(carry: Array, bp: PyTree):
        branch, outs, dead = carry, [], []
        for j in range(UNITS_PER_BLOCK):
            pre, branch = _unit(config, bp[f"_Unit_{j}"], branch)
            outs.append(branch)
            dead.append(_dead(config, pre))
        acts = jnp.stack(outs)
        in_norm, br_norm = _mean_row_norm(carry), _mean_row_norm(branch)
        stats = {"input_norm": in_norm, "branch_norm": br_norm,
                 "branch_ratio": br_norm / jnp.maximum(in_norm, _TINY),
                 "act_mean": jnp.mean(acts), "act_std": jnp.std(acts),
                 "dead_fraction": jnp.mean(jnp.stack(dead).astype(jnp.float32))}
        return (carry + branch if config.residual else branch), stats

    h, stats = jax.lax.scan(block, h, p["blocks"])
    out = nn.Dense(p["output"]["kernel"].shape[-1]).apply({"params": p["output"]}, h)
    return out, {f"{name}/{GROUPS_OF_BLOCKS}/{k}": v for k, v in stats.items()}


def network_statistics(name: str, config: NetworkConfig, before: PyTree, after: PyTree, grads: PyTree,
                       x: Array) -> tuple[Array, dict[str, Array]]:
    """:func:`parameter_statistics` and :func:`forward_statistics` of one network together: ``(output at
    ``after`` on x (B, out_dim), stats)``."""
    out, stats = forward_statistics(name, config, after, x)
    return out, {**parameter_statistics(name, before, after, grads), **stats}


def twin(tree: PyTree, i: int) -> PyTree:
    """Copy ``i`` of parameters stacked along a leading axis (the twin critics of SAC and TD3)."""
    return jax.tree.map(lambda x: x[i], tree)


# ---------------------------------------------------------------------------------------------------------
# Representation, value and policy statistics


def effective_rank(x: Array) -> Array:
    """() exp(-sum_i p_i log p_i), p_i = s_i / sum_j s_j, s the singular values of x (B, R) (Roy and Vetterli
    2007). Examples: a rank-1 matrix -> 1; k orthogonal columns of equal norm -> k; the zero matrix -> 1."""
    s = jnp.linalg.svd(x, compute_uv=False)
    p = s / jnp.maximum(jnp.sum(s), _TINY)
    plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
    return jnp.exp(-jnp.sum(plogp))


def mean_pairwise_cosine(x: Array) -> Array:
    """() mean over pairs i != k of cos(x_i, x_k), rows of x (B, R), B >= 2 (a zero row counts as cosine 0)::

        (||sum_i u_i||^2 - sum_i ||u_i||^2) / (B (B - 1)),   u_i = x_i / ||x_i||

    Example: [[1, 0], [0, 1], [1, 0]] -> (1 + 0 + 0) * 2 / 6 = 1/3."""
    u = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-24))
    b = x.shape[0]
    return (jnp.sum(jnp.square(jnp.sum(u, axis=0))) - jnp.sum(jnp.square(u))) / (b * (b - 1))


def representation_statistics(name: str, z: Array, cosine: bool = False) -> dict[str, Array]:
    """repr_norm_mean, repr_norm_max, effective_rank (and mean_pairwise_cosine) of representations z (B, R)
    under ``<name>/output/``."""
    norms = jnp.linalg.norm(z, axis=-1)
    out = {f"{name}/output/repr_norm_mean": jnp.mean(norms), f"{name}/output/repr_norm_max": jnp.max(norms),
           f"{name}/output/effective_rank": effective_rank(z)}
    if cosine:
        out[f"{name}/output/mean_pairwise_cosine"] = mean_pairwise_cosine(z)
    return out


def value_statistics(name: str, q: Array, target: Array, mask: Array) -> dict[str, Array]:
    """q_mean, q_std and td_error of one critic's values q (B,) against TD targets (B,), over the tuples
    with mask (B,) 1 (module docstring); under ``<name>/output/``."""
    n = jnp.maximum(jnp.sum(mask), 1.0)
    mean = jnp.sum(mask * q) / n
    std = jnp.sqrt(jnp.sum(mask * jnp.square(q - mean)) / n)
    return {f"{name}/output/q_mean": mean, f"{name}/output/q_std": std,
            f"{name}/output/td_error": jnp.sum(mask * jnp.abs(q - target)) / n}


def policy_statistics(name: str, log_prob: Array, log_std: Array) -> dict[str, Array]:
    """entropy (-mean log pi of fresh samples, log_prob (B,)) and log_std_mean (log_std (B, |A|)) under
    ``<name>/output/``."""
    return {f"{name}/output/entropy": -jnp.mean(log_prob), f"{name}/output/log_std_mean": jnp.mean(log_std)}


# ---------------------------------------------------------------------------------------------------------
# Host side: metrics rows and warnings


def flatten(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The ``diag/...`` entries of an epoch's metrics as metrics-row scalars: a stacked (N,) entry
    ``diag/<network>/blocks/<stat>`` becomes ``diag/<network>/block_000/<stat>`` ... ``block_<N-1>``
    (three digits, more when N > 1000); scalars are kept. Other keys are ignored."""
    row: dict[str, float] = {}
    for key, value in metrics.items():
        if not key.startswith(PREFIX):
            continue
        value = np.asarray(value)
        network, group, stat = key[len(PREFIX):].rsplit("/", 2)
        if group == GROUPS_OF_BLOCKS:
            digits = max(3, len(str(value.shape[0] - 1)))
            for i, v in enumerate(value.reshape(-1)):
                row[f"{PREFIX}{network}/block_{i:0{digits}d}/{stat}"] = float(v)
        else:
            row[key] = float(value)
    return row


def block_keys(row: Mapping[str, Any], network: str, stat: str) -> list[str]:
    """The row's ``diag/<network>/block_*/<stat>`` keys, in block order."""
    head = f"{PREFIX}{network}/block_"
    return sorted(k for k in row if k.startswith(head) and k.endswith(f"/{stat}"))


def networks(row: Mapping[str, Any]) -> list[str]:
    """The names of the networks with diagnostics in a metrics row, sorted."""
    return sorted({k[len(PREFIX):].split("/")[0] for k in row if k.startswith(PREFIX)})


def run_warnings(row: Mapping[str, Any]) -> list[str]:
    """The warnings of one metrics row (module docstring), one line each; [] when all is well or the row
    has no diagnostics."""
    found = []
    epoch = row.get("epoch", "?")
    for network in networks(row):
        key = f"{PREFIX}{network}/output/effective_rank"
        if key in row and row[key] < COLLAPSE_RANK:
            found.append(f"representation collapse: {key} = {row[key]:.3g} < {COLLAPSE_RANK} at epoch {epoch}")
        grads = block_keys(row, network, "grad_norm")
        if len(grads) >= 2:
            first, last = row[grads[0]], row[grads[-1]]
            ratio = first / last if last > 0 else (math.inf if first > 0 else 1.0)
            if ratio > GRADIENT_RATIO_BOUND:
                found.append(f"exploding gradients in {network}: first/last block grad_norm = {ratio:.3g} > "
                             f"{GRADIENT_RATIO_BOUND:g} at epoch {epoch}")
            elif ratio < 1.0 / GRADIENT_RATIO_BOUND:
                found.append(f"vanishing gradients in {network}: first/last block grad_norm = {ratio:.3g} < "
                             f"{1.0 / GRADIENT_RATIO_BOUND:g} at epoch {epoch}")
        key = f"{PREFIX}{network}/output/log_std_mean"
        if key in row and row[key] < ENTROPY_COLLAPSE_LOG_STD:
            found.append(f"policy entropy collapse: {key} = {row[key]:.3g} < {ENTROPY_COLLAPSE_LOG_STD:g} "
                         f"(log-std floor {LOG_STD_MIN:g}) at epoch {epoch}")
    return found


# The columns of :func:`format_table`: (statistic, header).
_TABLE_COLUMNS = (("grad_norm", "grad"), ("param_norm", "param"), ("update_ratio", "update"),
                  ("input_norm", "|x|"), ("branch_norm", "|h|"), ("branch_ratio", "|h|/|x|"),
                  ("act_mean", "act mean"), ("act_std", "act std"), ("dead_fraction", "dead"))


def format_table(row: Mapping[str, Any]) -> str:
    """A terminal table of one metrics row's diagnostics (``gcrl-bench inspect``): per network one line per
    group (input, block_000 ..., output) with the per-layer statistics (blank where a group has none), then
    the network's other output statistics, then the row's :func:`run_warnings`."""
    epoch = row.get("epoch", "?")
    nets = networks(row)
    if not nets:
        return f"epoch {epoch}: no diagnostics recorded (the run used --no-diagnostics)"
    lines = [f"epoch {epoch}"]
    header = f"{'group':<11}" + "".join(f"{h:>11}" for _, h in _TABLE_COLUMNS)
    for network in nets:
        head = f"{PREFIX}{network}/"
        groups = sorted({k[len(head):].split("/")[0] for k in row if k.startswith(head)},
                        key=lambda g: (g != "input", g == "output", g))
        lines += ["", network, header]
        for group in groups:
            cells = [row.get(f"{head}{group}/{stat}") for stat, _ in _TABLE_COLUMNS]
            lines.append(f"{group:<11}" + "".join(f"{'':>11}" if v is None else f"{v:>11.4g}" for v in cells))
        shown = {stat for stat, _ in _TABLE_COLUMNS}
        extra = sorted(k for k in row if k.startswith(f"{head}output/") and k.rsplit("/", 1)[1] not in shown)
        lines += [f"  {k.rsplit('/', 1)[1]} = {row[k]:.4g}" for k in extra]
    found = run_warnings(row)
    lines += ["", "warnings:" if found else "warnings: none"] + [f"  {w}" for w in found]
    return "\n".join(lines)

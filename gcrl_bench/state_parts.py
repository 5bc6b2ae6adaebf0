"""Which leaves of a loop state belong to which of its fields, read from the state's structure.

A *flags tree* has the structure of the state it describes and a Python bool at every leaf. The
checkpoints (:mod:`gcrl_bench.checkpoint`: leave the replay buffer out, count its bytes) and the
data-parallel layout (:mod:`gcrl_bench.sharding`: which leaves are split along the environment axis)
select leaves with these trees, so the selection follows the state's fields themselves and never the
text of key paths: a leaf of ``state.buffer`` is a buffer leaf whatever it is called, and a leaf of any
other field is not, even if its name contains "buffer".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

BUFFER_FIELD = "buffer"  # the LoopState field that holds the replay buffer


def field_flags(state: Any, *fields: str) -> Any:
    """The flags tree of ``state`` marking the leaves of its top-level ``fields``.

    Args:
      state: a dataclass pytree (e.g. :class:`gcrl_bench.training.LoopState`, arrays or
        ``jax.ShapeDtypeStruct`` leaves) or a dict, whose top-level fields (attributes, or keys of the
        dict) include every name in ``fields``.
      fields: names of top-level fields.
    Returns:
      The structure of ``state``: ``True`` at every leaf inside one of ``fields``, ``False`` at every
      other leaf.
    Raises:
      TypeError: ``state`` is neither a dataclass nor a dict.
      AttributeError / KeyError: a name in ``fields`` is not a field of ``state``.
    """
    flags = jax.tree.map(lambda _: False, state)
    if isinstance(state, dict):
        return {**flags, **{f: jax.tree.map(lambda _: True, state[f]) for f in fields}}
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(flags, **{f: jax.tree.map(lambda _: True, getattr(state, f)) for f in fields})
    raise TypeError(f"cannot select fields {fields} of a {type(state).__name__}: give a dataclass pytree "
                    "(a LoopState) or a dict")


def buffer_flags(state: Any) -> Any:
    """The flags tree of ``state`` marking exactly the leaves of its replay buffer (``state.buffer``)."""
    return field_flags(state, BUFFER_FIELD)

"""Typed overrides of frozen dataclass configs: conversion from the type hints, scoping, nested fields, the
docstring parser. Pure parsing: nothing here trains or compiles."""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping

import pytest

from gcrl_bench.config import LoopConfig
from gcrl_bench.errors import ConfigError
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.overrides import (
    Override,
    apply_overrides,
    coerce,
    config_fields,
    field_docs,
    field_rows,
    inherited_field_docs,
    leaf_paths,
    resolve_overrides,
    type_name,
)

Mode = Literal["a", "b"]


@dataclasses.dataclass(frozen=True)
class Inner:
    """Nested settings.

    Attributes:
      strategy: which one (``a`` or ``b``).
      fraction: how much, in [0, 1];
        continued on a second line.
    """

    strategy: Mode = "a"
    fraction: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"fraction {self.fraction!r} must lie in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Outer:
    """A plugin-style config.

    Attributes:
      network: the networks.
      inner: nested settings.
      steps: an integer.
      rate: a float.
      flag: a switch.
      name: free text.
      limit: an optional integer.
      sizes: a tuple of integers.
      pair: one int and one str.
      level: a Literal of ints.
      table: not settable from text.
    """

    network: NetworkConfig = NetworkConfig()
    inner: Inner = Inner()
    steps: int = 10
    rate: float = 0.5
    flag: bool = False
    name: str = "x"
    limit: int | None = None
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (0, "z")
    level: Literal[1, 2, 3] = 1
    table: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Other:
    """Another config that shares ``rate`` with Outer.

    Attributes:
      rate: a float.
      tau: only here.
    """

    rate: float = 0.1
    tau: float = 0.005


def hints(cls=Outer):
    return config_fields(cls)


@pytest.mark.parametrize(
    "field,raw,expected",
    [
        ("steps", "256", 256),
        ("steps", "1_000_000", 1_000_000),
        ("steps", "1e6", 1_000_000),
        ("rate", "3e-4", 3e-4),
        ("rate", "2", 2.0),
        ("flag", "true", True),
        ("flag", "Off", False),
        ("flag", "1", True),
        ("name", "hello world", "hello world"),
        ("limit", "none", None),
        ("limit", "7", 7),
        ("sizes", "4,8, 16", (4, 8, 16)),
        ("sizes", "(4, 8)", (4, 8)),
        ("sizes", "", ()),
        ("pair", "3,abc", (3, "abc")),
        ("level", "2", 2),
    ],
)
def test_command_line_text_is_converted_from_the_type_hint(field, raw, expected):
    value = coerce(raw, hints()[field], "--set")
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("steps", 5, 5),
        ("rate", 1, 1.0),  # a TOML integer for a float field
        ("flag", True, True),
        ("sizes", [3, 4], (3, 4)),
        ("pair", [1, "q"], (1, "q")),
        ("level", 3, 3),
        ("limit", 9, 9),
    ],
)
def test_toml_values_are_checked_and_converted(field, value, expected):
    out = coerce(value, hints()[field], "sweep.toml: set." + field)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("steps", "2.5", "expected an integer, got '2.5'"),
        ("steps", True, "expected an integer, got True"),  # a bool is not an int
        ("rate", "fast", "expected a number, got 'fast'"),
        ("flag", "maybe", "expected true or false, got 'maybe'"),
        ("flag", 1, "expected true or false, got 1"),
        ("name", 5, "expected a string, got 5"),
        ("limit", "lots", "expected int or none, got 'lots'"),
        ("sizes", "1,x", "expected tuple of int ('x': expected an integer), got '1,x'"),
        ("pair", "1,2,3", "expected 2 comma-separated values (tuple (int, str)), got 3"),
        ("level", "4", "expected one of 1, 2, 3, got '4'"),
        ("level", "true", "expected one of 1, 2, 3"),
        ("table", "a=1", "cannot be set from the command line"),
        ("inner", "a", "group of settings (Inner)"),
    ],
)
def test_values_that_do_not_fit_give_one_line(field, value, needle):
    with pytest.raises(ConfigError) as err:
        coerce(value, hints()[field], f"--set {field}")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--set {field} ")
    assert needle in message


def test_literal_matches_the_string_exactly():
    hint = config_fields(LoopConfig)["reset_mode"]
    assert coerce("fresh", hint, "x") == "fresh"
    with pytest.raises(ConfigError, match="expected one of first, fresh, got 'Fresh'"):
        coerce("Fresh", hint, "x")


def test_type_names():
    h = hints()
    assert type_name(h["steps"]) == "int"
    assert type_name(h["limit"]) == "int or none"
    assert type_name(h["sizes"]) == "tuple of int"
    assert type_name(h["pair"]) == "tuple (int, str)"
    assert type_name(h["level"]) == "one of 1, 2, 3"
    assert type_name(config_fields(NetworkConfig)["activation"]) == "one of swish, relu, tanh"


def test_leaf_paths_expand_nested_configs_in_field_order():
    assert leaf_paths(Outer)[:8] == [
        "network.depth", "network.width", "network.residual", "network.layer_norm", "network.activation",
        "inner.strategy", "inner.fraction", "steps",
    ]
    assert leaf_paths(Other) == ["rate", "tau"]


CONFIGS = {"outer": Outer, "other": Other, "loop": LoopConfig}


def sets(*items, origin="--set"):
    return [Override(k, v, f"{origin} {k}={v}") for k, v in (item.split("=", 1) for item in items)]


def test_a_plain_key_applies_to_every_config_that_has_it_whatever_the_order():
    for order in (CONFIGS, dict(reversed(list(CONFIGS.items())))):
        changes = resolve_overrides(sets("rate=0.25", "tau=0.01", "batch_size=64"), order)
        assert changes["outer"] == {"rate": 0.25}
        assert changes["other"] == {"rate": 0.25, "tau": 0.01}
        assert changes["loop"] == {"batch_size": 64}


def test_a_scoped_key_applies_to_one_config_and_wins_over_a_plain_one():
    changes = resolve_overrides(sets("other.rate=0.75", "rate=0.25", "loop.num_envs=32"), CONFIGS)
    assert changes["outer"] == {"rate": 0.25}
    assert changes["other"] == {"rate": 0.75}  # scoped, although given first
    assert changes["loop"] == {"num_envs": 32}


def test_the_later_of_two_equal_keys_wins():
    changes = resolve_overrides(sets("tau=0.1", "tau=0.2"), CONFIGS)
    assert changes["other"] == {"tau": 0.2}


def test_nested_fields_by_dotted_keys_plain_and_scoped():
    changes = resolve_overrides(sets("inner.strategy=b", "outer.inner.fraction=0.5"), CONFIGS)
    assert changes["outer"] == {"inner.strategy": "b", "inner.fraction": 0.5}
    assert changes["other"] == {} and changes["loop"] == {}
    config = apply_overrides(Outer(), changes["outer"], "outer")
    assert config.inner == Inner(strategy="b", fraction=0.5)
    assert config.steps == 10 and config.network == NetworkConfig()
    assert Outer().inner == Inner()  # the original is untouched


def test_unknown_key_is_refused_with_close_matches_and_the_known_keys():
    with pytest.raises(ConfigError) as err:
        resolve_overrides(sets("tua=1"), CONFIGS)
    message = str(err.value)
    assert message.startswith("--set tua=1: unknown hyperparameter 'tua'")
    assert "did you mean tau" in message
    assert "known: batch_size," in message and "inner.strategy" in message and "tau" in message


def test_unknown_key_for_a_scope_lists_that_config_only():
    with pytest.raises(ConfigError) as err:
        resolve_overrides(sets("other.steps=3"), CONFIGS)
    assert str(err.value) == ("--set other.steps=3: unknown hyperparameter 'steps' for algorithm other; "
                              "its keys: rate, tau")


def test_a_nested_field_named_without_its_group_suggests_the_dotted_key():
    with pytest.raises(ConfigError, match=r"did you mean inner\.strategy"):
        resolve_overrides(sets("strategy=b"), CONFIGS)


def test_a_scope_that_is_not_chosen_is_refused():
    with pytest.raises(ConfigError) as err:
        resolve_overrides(sets("sac.tau=0.01"), CONFIGS, other_scopes=["sac", "crl"])
    assert str(err.value) == ("--set sac.tau=0.01: 'sac' is not one of the chosen algorithms (outer, other); "
                              "add it to --algos or drop the 'sac.' scope")


def test_a_group_given_a_value_is_refused_with_its_fields():
    with pytest.raises(ConfigError) as err:
        resolve_overrides(sets("inner=b"), CONFIGS)
    assert str(err.value) == ("--set inner=b: inner is a group of settings in algorithm outer; set one of its "
                              "fields instead: inner.strategy, inner.fraction")


def test_refused_paths_give_their_reason_plain_or_scoped():
    refused = {"network": "use the network flags", "network.depth": "use --depths"}
    for key in ("network.depth=8", "outer.network.depth=8"):
        with pytest.raises(ConfigError) as err:
            resolve_overrides(sets(key), CONFIGS, refused=refused)
        assert str(err.value) == f"--set {key}: network.depth is not set with --set; use --depths"
    with pytest.raises(ConfigError, match="network.width is not set with --set; use the network flags"):
        resolve_overrides(sets("network.width=8"), CONFIGS, refused=refused)
    with pytest.raises(ConfigError) as err:  # refused keys are not offered as known keys
        resolve_overrides(sets("bogus=1"), CONFIGS, refused=refused)
    assert "network." not in str(err.value)


def test_conversion_errors_name_the_config_and_the_field():
    with pytest.raises(ConfigError) as err:
        resolve_overrides(sets("reset_mode=bad"), CONFIGS)
    assert str(err.value) == "--set reset_mode=bad: the loop config's reset_mode expected one of first, fresh, got 'bad'"


def test_malformed_keys_are_refused():
    for key in ("", "a..b", ".tau"):
        with pytest.raises(ConfigError, match="is not a field name"):
            resolve_overrides([Override(key, "1", f"--set {key}=1")], CONFIGS)


def test_apply_overrides_lets_the_config_class_check_values():
    with pytest.raises(ConfigError, match=r"fraction 2\.0 must lie in \[0, 1\]"):
        apply_overrides(Outer(), {"inner.fraction": 2.0}, "outer")

    @dataclasses.dataclass(frozen=True)
    class Picky:
        n: int = 1

        def __post_init__(self):
            if self.n > 5:
                raise ValueError("n is too big")

    with pytest.raises(ConfigError) as err:
        apply_overrides(Picky(), {"n": 9}, "algorithm picky")
    assert str(err.value) == "algorithm picky: Picky rejects n=9: n is too big"


def test_loop_overrides_reach_a_real_loop_config():
    changes = resolve_overrides(sets("batch_size=256", "loop.reset_mode=fresh", "total_env_steps=2e6"), {"loop": LoopConfig})
    loop = apply_overrides(LoopConfig(), changes["loop"], "the loop config")
    assert (loop.batch_size, loop.reset_mode, loop.total_env_steps) == (256, "fresh", 2_000_000)
    assert loop.num_envs == LoopConfig().num_envs


def test_field_docs_join_continuation_lines_and_share_multi_name_entries():
    class Config:
        """Summary.

        Attributes:
          alpha: first line
            second line
          beta, gamma: two at once
        Returns:
          nothing: not a field
        """

    assert field_docs(Config) == {"alpha": "first line second line", "beta": "two at once", "gamma": "two at once"}
    assert field_docs(Inner)["fraction"] == "how much, in [0, 1]; continued on a second line."


def test_inherited_docs_resolve_as_in_and_append_changed_defaults():
    @dataclasses.dataclass(frozen=True)
    class Base:
        """Base.

        Attributes:
          x: the x value.
          y: the y value.
        """

        x: int = 1
        y: int = 2

    @dataclasses.dataclass(frozen=True)
    class Child(Base):
        """Child.

        Attributes:
          x: as in :class:`Base`.
          y: default 3.
        """

        y: int = 3

    assert field_docs(Child) == {"x": "as in :class:`Base`.", "y": "default 3."}
    assert inherited_field_docs(Child) == {"x": "the x value.", "y": "the y value. In Child: default 3."}


def test_field_rows_show_defaults_or_an_instance_with_nested_groups():
    rows = {r.path: r for r in field_rows(Outer)}
    assert rows["inner"].group and rows["inner"].type == "Inner" and rows["inner"].doc == "nested settings."
    assert (rows["inner.fraction"].type, rows["inner.fraction"].value) == ("float", 1.0)
    assert rows["inner.fraction"].doc == "how much, in [0, 1]; continued on a second line."
    assert (rows["network.width"].value, rows["limit"].type, rows["table"].value) == (256, "int or none", {})
    rows = {r.path: r for r in field_rows(Outer, Outer(steps=3, inner=Inner(strategy="b")))}
    assert rows["steps"].value == 3 and rows["inner.strategy"].value == "b"

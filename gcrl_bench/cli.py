"""The ``gcrl-bench`` command line: run a grid, list and describe what is registered, build a report.

User errors (unknown names, invalid values, unreadable results) print one line and exit with status 2;
nothing already written is touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import time
import textwrap
from pathlib import Path

import click

from gcrl_bench.budgets import TimeBudgetReached
from gcrl_bench.errors import ConfigError, GcrlBenchError, UnknownNameError
from gcrl_bench.overrides import Override, apply_overrides, field_rows, resolve_overrides

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "gcrl-bench", "jax")


def _enable_compilation_cache() -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ.get("GCRL_BENCH_JAX_CACHE", DEFAULT_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _csv(kind: str, value: str | None, cast=str) -> list:
    if value is None:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"--{kind} is empty; give a comma-separated list, e.g. --{kind} {'4,64' if cast is int else 'crl'}")
    out = []
    for v in items:
        try:
            out.append(cast(v))
        except ValueError:
            raise ConfigError(f"--{kind}: {v!r} is not a valid {cast.__name__}; e.g. --{kind} 4,64") from None
    if len(set(out)) != len(out):
        raise ConfigError(f"--{kind} lists a value twice: {value!r}")
    return out


# --depths ladder: the depth-calibration ladder, each depth four times the previous one.
DEPTH_LADDER = (4, 16, 64, 256, 1024)


def _depths(value: str) -> list[int]:
    """The depths of ``--depths``: ``ladder`` (:data:`DEPTH_LADDER`) or a comma-separated list of integers."""
    if value.strip() == "ladder":
        return list(DEPTH_LADDER)
    return _csv("depths", value, int)


# Network fields are a sweep axis (part of every run id) set by their own flags, never by --set.
_NETWORK_FLAGS = {
    "network": "the networks are set by --depths, --widths, --residual/--no-residual, --layer-norm/--no-layer-norm "
               "and --activation",
    "network.depth": "use --depths (a sweep axis), e.g. --depths 4,16",
    "network.width": "use --widths (a sweep axis), e.g. --widths 256",
    "network.residual": "use --residual or --no-residual",
    "network.layer_norm": "use --layer-norm or --no-layer-norm",
    "network.activation": "use --activation",
}
_NETWORK_FLAG_NAMES = {"depth": "--depths", "width": "--widths", "residual": "--residual/--no-residual",
                       "layer_norm": "--layer-norm/--no-layer-norm", "activation": "--activation"}


def _parse_sets(items: tuple[str, ...]) -> list[Override]:
    """``--set KEY=VALUE`` items as overrides, in the order given (see gcrl_bench.overrides)."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE; e.g. --set batch_size=256 or --set sac.tau=0.01")
        k, v = item.split("=", 1)
        out.append(Override(key=k.strip(), value=v.strip(), origin=f"--set {item}"))
    return out


# Flags given as lists: a TOML array or a comma-separated string; the element type of the array.
_LIST_FLAGS = {"algos": str, "tasks": str, "depths": int, "widths": int, "batch_sizes": int, "seeds": int}


def _flag_name(param: click.Parameter) -> str:
    return next((o[2:] for o in param.opts if o.startswith("--")), param.name or "")


def _flatten(table: dict, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((prefix + key, value))
    return out


def _file_value(ctx: click.Context, param: click.Option, value: object, where: str) -> object:
    """A TOML value checked against, and converted like, the value of the flag ``param``."""
    name = param.name
    if name in _LIST_FLAGS:
        kind = _LIST_FLAGS[name]
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
            return ",".join(str(v) for v in value)
        example = "[4, 64]" if kind is int else '["crl", "sac"]'
        raise ConfigError(f"{where} = {value!r}: expected a non-empty array of {kind.__name__}s or a "
                          f"comma-separated string, e.g. {example}")
    if param.is_flag:
        ok, expected = isinstance(value, bool), "true or false"
    elif param.type is click.INT:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif param.type is click.FLOAT:
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif param.type is click.STRING:
        ok, expected = isinstance(value, (str, int)) and not isinstance(value, bool), "a string"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{where} = {value!r}: expected {expected} (as for --{_flag_name(param)})")
    try:
        return param.type.convert(value, param, ctx)
    except click.BadParameter as exc:
        raise ConfigError(f"{where} = {value!r}: {' '.join(exc.format_message().split())}") from None


def _read_sweep_file(ctx: click.Context, path: str) -> tuple[dict[str, object], list[Override]]:
    """The flags and --set overrides of a sweep file (TOML, the flags' names as keys, a [set] table).

    Returns:
      (parameter name -> value, converted as the flag would be; the [set] table's overrides in file order)
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {' '.join(str(exc).split())}") from None
    options = {_flag_name(p): p for p in ctx.command.params
               if isinstance(p, click.Option) and p.name not in ("config_file", "sets")}
    values: dict[str, object] = {}
    overrides: list[Override] = []
    for key, value in data.items():
        flag = key.replace("_", "-")
        if flag == "set":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: set must be a table of overrides, e.g. [set] batch_size = 256")
            overrides.extend(Override(key=k, value=v, origin=f"{path}: set.{k}") for k, v in _flatten(value))
            continue
        if flag not in options:
            known = sorted(options) + ["set"]
            close = difflib.get_close_matches(flag, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r}{hint}; known keys: {', '.join(known)}")
        values[options[flag].name] = _file_value(ctx, options[flag], value, f"{path}: {key}")
    return values, overrides


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gcrl-bench")
def cli():
    """Benchmark harness for online goal-conditioned RL: deep Contrastive RL and baselines in JAX."""


@cli.command()
@click.option("--algos", default="crl", show_default=True, help="Comma-separated algorithms (see `gcrl-bench list algos`).")
@click.option("--tasks", default=None, help="Comma-separated tasks; default: all ten benchmark tasks.")
@click.option("--depths", default="4", show_default=True,
              help="Network depths (positive multiples of 4), e.g. 4,16,64, or 'ladder': 4,16,64,256,1024 "
                   "(also in a sweep file: depths = \"ladder\").")
@click.option("--widths", default="256", show_default=True, help="Network widths.")
@click.option("--batch-sizes", default=None,
              help="Batch sizes, a sweep axis, e.g. 256,512,1024 (default: the preset's batch_size, or --set "
                   "batch_size's; not together with --set batch_size).")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0,1,2.")
@click.option("--preset", default="paper", show_default=True, help="Loop preset (see `gcrl-bench list presets`).")
@click.option("--env-steps", type=int, default=None, help="Override the preset's total env steps per run.")
@click.option("--epochs", type=int, default=None, help="Override the preset's number of epochs (evaluations).")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False), help="Results directory.")
@click.option("--residual/--no-residual", default=True, show_default=True, help="Residual connections in every network.")
@click.option("--layer-norm/--no-layer-norm", default=True, show_default=True, help="LayerNorm in every network.")
@click.option("--activation", type=click.Choice(["swish", "relu", "tanh"]), default="swish", show_default=True)
@click.option("--matmul-precision", type=click.Choice(["highest", "high", "default"]), default=None,
              help="Precision of the float32 matmuls in CRL's energy and its gradient (TF32 on recent NVIDIA GPUs is "
                   "'high'/'default'); the same as --set matmul_precision=...; recorded in config.json. Default: highest.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a hyperparameter (repeatable): KEY applies to every chosen algorithm config and the loop "
                   "config that has it (--set batch_size=256); ALGO.KEY or loop.KEY to one only (--set sac.tau=0.01); "
                   "dots reach nested fields (--set relabel.strategy=final). network.* is refused: use --depths, "
                   "--widths, --residual, --layer-norm, --activation. Fields, types and defaults: "
                   "`gcrl-bench describe ALGO|PRESET`.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write the PDF report at the end.")
@click.option("--diagnostics/--no-diagnostics", default=True, show_default=True,
              help="Record per-layer and representation diagnostics (diag/... in metrics.jsonl, warnings in "
                   "summary.json) once per epoch; see `gcrl-bench inspect RUN_DIR`.")
@click.option("--checkpoint-every", type=int, default=5, show_default=True,
              help="Checkpoint every K epochs (0: only on SIGTERM/SIGINT); an interrupted run resumes from it.")
@click.option("--time-budget", "time_budget", type=float, default=None, metavar="HOURS",
              help="Stop the sweep HOURS after it starts: no run starts after that, running ones checkpoint and stop "
                   "at their next epoch boundary; prints 'time budget reached: N runs not started; ...' and exits "
                   "with status 3. Rerun the same command to continue.")
@click.option("--stop-if-stalled", "stop_if_stalled", type=int, default=0, metavar="N",
              help="End a run early (complete; \"stopped\": \"stalled\" in summary.json) once its eval/time_at_goal "
                   "has not improved on its best for N consecutive evaluations (default 0: off).")
@click.option("--checkpoint-buffer-limit-mb", type=int, default=4096, show_default=True,
              help="Checkpoints include the replay buffer up to this size (0: never); without it a resumed run refills it.")
@click.option("--devices", default="1", show_default=True, help="Local devices per run, data-parallel: a number or 'all'.")
@click.option("--logger", type=click.Choice(["none", "tensorboard", "wandb"]), default="none", show_default=True,
              help="Mirror each run's metrics to a tracker: tensorboard (event files in runs/<run_id>/tensorboard/) or "
                   "wandb (offline unless WANDB_MODE says otherwise); a resumed run continues its tracker run.")
@click.option("--executor", type=click.Choice(["local", "ray", "slurm"]), default="local", show_default=True,
              help="local: this machine (see --workers); ray: a Ray cluster; slurm: SLURM jobs through submitit.")
@click.option("--workers", type=int, default=0,
              help="Parallel runs of the local executor (default: one per GPU; 1 without GPUs, in this process).")
@click.option("--address", "ray_address", default=None, help="Ray cluster address (default: start a local Ray instance).")
@click.option("--cpus-per-run", type=int, default=1, show_default=True, help="CPUs each run reserves (ray, slurm).")
@click.option("--gpus-per-run", type=float, default=None,
              help="GPUs each run reserves (ray: fractions share a GPU; slurm: whole GPUs); default 1 if there are GPUs.")
@click.option("--slurm-partition", default="", help="SLURM partition.")
@click.option("--slurm-time", "slurm_time_min", type=int, default=24 * 60, show_default=True, help="SLURM time limit per run, minutes.")
@click.option("--slurm-mem-gb", type=int, default=0, help="SLURM memory per run in GB (default: the partition's).")
@click.option("--slurm-account", default="", help="SLURM account.")
@click.option("--slurm-qos", default="", help="SLURM QOS.")
@click.option("--slurm-constraint", default="", help="SLURM node constraint.")
@click.option("--slurm-cluster", type=click.Choice(["slurm", "local"]), default="slurm", show_default=True,
              help="submitit backend: 'local' runs the same jobs as local processes (testing without SLURM).")
@click.option("--dry-run", is_flag=True,
              help="Print each run's parameters per network, FLOPs per gradient step, memory estimate and planned "
                   "steps (one row per run, then totals) and exit without compiling or writing anything.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="A sweep file (TOML) with these options' names as keys and a [set] table of overrides; flags given "
                   "on the command line win, and its [set] entries come before --set's.")
@click.pass_context
def run(ctx, config_file, **params):
    """Train every combination of algorithms x tasks x depths x widths x batch sizes x seeds; skip completed
    runs, resume interrupted ones from their last checkpoint."""
    _run_sweep(**_sweep_params(ctx))


def _sweep_params(ctx: click.Context) -> dict[str, object]:
    """The parameters of ``run`` with its sweep file (--config) merged in: a flag given on the command line
    (or through the environment) keeps its value, any other takes the file's, else its default; ``sets``
    becomes the list of overrides, the file's [set] entries first, then --set's in order."""
    from click.core import ParameterSource

    params = dict(ctx.params)
    config_file = params.pop("config_file", None)
    overrides: list[Override] = []
    if config_file is not None:
        values, overrides = _read_sweep_file(ctx, config_file)
        explicit = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
        for name, value in values.items():
            if ctx.get_parameter_source(name) not in explicit:
                params[name] = value
    params["sets"] = overrides + _parse_sets(params["sets"])
    return params


def _run_sweep(algos, tasks, depths, widths, seeds, preset, env_steps, epochs, out, residual, layer_norm, activation, sets, report,
        checkpoint_every, checkpoint_buffer_limit_mb, devices, executor, workers, ray_address, cpus_per_run,
        gpus_per_run, slurm_partition, slurm_time_min, slurm_mem_gb, slurm_account, slurm_qos, slurm_constraint,
        slurm_cluster, logger, dry_run=False, batch_sizes=None, diagnostics=True, time_budget=None, stop_if_stalled=0,
        matmul_precision=None):
    """The body of ``run`` once the sweep file and the flags are merged (``sets``: the overrides)."""
    from gcrl_bench import budgets, registry, results
    from gcrl_bench.checkpoint import CheckpointConfig
    from gcrl_bench.executors import ExecutorConfig
    from gcrl_bench.runner import ExecutionOptions
    from gcrl_bench.sharding import parse_devices
    from gcrl_bench.config import LoopConfig, derive_plan, get_preset
    from gcrl_bench.networks import NetworkConfig
    from gcrl_bench.runspec import RunSpec
    from gcrl_bench import xla_setup

    algo_names = _csv("algos", algos)
    task_names = _csv("tasks", tasks) if tasks is not None else registry.benchmark_task_names()
    depth_list, width_list, seed_list = _depths(depths), _csv("widths", widths, int), _csv("seeds", seeds, int)
    batch_list = _csv("batch-sizes", batch_sizes, int)  # [] (not given): the loop config's batch size
    preset_obj = get_preset(preset)
    for name in algo_names:
        registry.get_algorithm(name)
    specs = {name: registry.task_spec(name) for name in task_names}
    xla_setup.configure_for(specs.values())  # before the first JAX computation
    if not task_names:
        raise ConfigError("no benchmark tasks are registered; pass --tasks (see `gcrl-bench list tasks`)")
    if checkpoint_buffer_limit_mb < 0:
        raise ConfigError(f"--checkpoint-buffer-limit-mb {checkpoint_buffer_limit_mb}: must be >= 0 (0: never save the buffer)")
    options = ExecutionOptions(
        checkpoint=CheckpointConfig(every_epochs=checkpoint_every, buffer_max_bytes=checkpoint_buffer_limit_mb << 20),
        devices=parse_devices(devices), logger=None if logger == "none" else logger, diagnostics=diagnostics,
        deadline=budgets.deadline_after(time_budget), stop_if_stalled=stop_if_stalled,
    )
    executor_config = ExecutorConfig(
        kind=executor, workers=workers, ray_address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
        slurm_partition=slurm_partition, slurm_time_min=slurm_time_min, slurm_mem_gb=slurm_mem_gb,
        slurm_account=slurm_account, slurm_qos=slurm_qos, slurm_constraint=slurm_constraint, slurm_cluster=slurm_cluster,
    )
    networks = [NetworkConfig(depth=d, width=w, residual=residual, layer_norm=layer_norm, activation=activation)
                for d in depth_list for w in width_list]
    algorithms = {name: registry.get_algorithm(name) for name in algo_names}
    if matmul_precision is not None:  # a flag for one --set key, applied to the chosen algorithms that have it
        sets = [*sets, Override(key="matmul_precision", value=matmul_precision,
                                origin=f"--matmul-precision {matmul_precision}")]
    changes = resolve_overrides(
        sets, {**{name: a.config_cls for name, a in algorithms.items()}, "loop": LoopConfig},
        other_scopes=registry.algorithm_entries(), refused=_NETWORK_FLAGS,
    )
    if batch_list and "batch_size" in changes["loop"]:
        raise ConfigError(f"--batch-sizes {batch_sizes} and --set batch_size={changes['loop']['batch_size']} both set the "
                          "batch size; keep one (--batch-sizes is the sweep axis)")

    grid: list[RunSpec] = []
    for algo_name, algorithm in algorithms.items():
        for task_name in task_names:
            loop = preset_obj.loop_for(task_name)
            if env_steps is not None:
                loop = dataclasses.replace(loop, total_env_steps=env_steps)
            if epochs is not None:
                loop = dataclasses.replace(loop, num_epochs=epochs)
            loop = apply_overrides(loop, changes["loop"], "the loop config")
            loops = [dataclasses.replace(loop, batch_size=b) for b in batch_list] or [loop]
            for net in networks:
                algo_config = apply_overrides(algorithm.config_cls(network=net), changes[algo_name], f"algorithm {algo_name}")
                for run_loop in loops:
                    b = run_loop.batch_size
                    try:
                        derive_plan(run_loop, specs[task_name])  # raises a clear error before anything runs
                    except ConfigError as exc:
                        raise ConfigError(f"run {algo_name} {task_name} d{net.depth} w{net.width} batch_size {b}: "
                                          f"{exc}") from None
                    for name in ("num_envs", "batch_size"):
                        if options.devices > 1 and getattr(run_loop, name) % options.devices:
                            raise ConfigError(f"--devices {options.devices}: {name} ({getattr(run_loop, name)}) must be "
                                              f"divisible by the number of devices; use --set {name}=<multiple of "
                                              f"{options.devices}>")
                    for seed in seed_list:
                        grid.append(RunSpec(algo=algo_name, task=task_name, seed=seed, algo_config=algo_config,
                                            loop=run_loop, preset=preset))

    out_path = Path(out)
    if not dry_run:
        results.ensure_writable(out_path)
    results.validate_directory(out_path)
    todo = [r for r in grid if not results.RunDir(out_path / "runs" / r.run_id).is_complete()]
    total_steps = sum(derive_plan(r.loop, specs[r.task]).total_env_steps for r in todo)
    click.echo(
        f"plan: {len(grid)} runs ({len(algo_names)} algos x {len(task_names)} tasks x {len(networks)} networks x "
        f"{len(batch_list) or 1} batch sizes x {len(seed_list)} seeds), preset {preset!r}; "
        f"{len(grid) - len(todo)} already complete in {out_path}"
    )
    for r in todo:
        p = derive_plan(r.loop, specs[r.task])
        click.echo(f"  {r.run_id}: {p.total_env_steps:,} env steps, {r.loop.num_epochs} evaluations")
    click.echo(f"total: {total_steps:,} env steps to run")

    from gcrl_bench import planner

    # Shapes only (jax.eval_shape): refuses a run that cannot fit before anything compiles, for every executor.
    plans = planner.plan_runs(todo, options.devices)
    device_bytes = planner.device_memory_bytes()
    if dry_run:
        for line in planner.table_lines(plans, device_bytes):
            click.echo(line)
    for p in plans:
        planner.check_fits(p, device_bytes)
    if dry_run:
        return
    _enable_compilation_cache()
    from gcrl_bench.executors import run_all

    try:
        failures = run_all(todo, out_path, options, executor_config)
    except budgets.TimeBudgetReached:
        results.write_scores_csv(out_path)  # the runs complete so far; the report waits for the whole sweep
        raise
    results.write_scores_csv(out_path)
    if report:
        from gcrl_bench.reports import build_report

        written = build_report(out_path)
        click.echo(f"report: {written.get('pdf', out_path / 'report.pdf')}")
    if failures:
        raise GcrlBenchError(f"{len(failures)} run(s) failed: " + "; ".join(failures))


@cli.command("list")
@click.argument("what", type=click.Choice(["tasks", "algos", "presets", "all"]), default="all")
def list_(what):
    """List registered tasks, algorithms and presets."""
    from gcrl_bench import registry
    from gcrl_bench.config import PAPER_BUDGETS, PRESETS

    if what in ("tasks", "all"):
        click.echo("tasks:")
        for name, entry in sorted(registry.task_entries().items(), key=lambda kv: (not kv[1].spec.benchmark, kv[0])):
            s = entry.spec
            if s.benchmark:
                kind = "benchmark"
            elif entry.origin == registry.BUILTIN and name in PAPER_BUDGETS:  # a paper task run another way
                kind = "VARIANT (not one of the ten)"
            elif entry.origin == registry.BUILTIN:
                kind = ("CONTROL" if s.description.startswith("control") else "SANITY") + " (not one of the ten)"
            else:
                kind = "plugin (not one of the ten)"
            budget = f"{PAPER_BUDGETS[name] // 1_000_000}M steps" if name in PAPER_BUDGETS else "-"
            click.echo(
                f"  {name:<20} {kind:<28} obs {s.observation_size:>3} act {s.action_size:>2} goal {list(s.goal_indices)} "
                f"r<{s.success_threshold} T={s.episode_length} eval goals: {s.eval_goal_set:<5} paper budget {budget:<10} "
                f"[{entry.origin}]"
            )
    if what in ("algos", "all"):
        click.echo("algorithms:")
        algorithms = sorted(registry.algorithm_entries().items())
        width = max([10] + [len(name) for name, _ in algorithms])
        for name, entry in algorithms:
            click.echo(f"  {name:<{width}} {entry.algorithm.description} [{entry.origin}]")
    if what in ("presets", "all"):
        click.echo("presets:")
        for p in PRESETS.values():
            l = p.loop
            click.echo(f"  {p.name:<7} {p.description}")
            click.echo(f"          envs {l.num_envs}, unroll {l.unroll_length}, batch {l.batch_size}, updates/step "
                       f"{l.updates_per_step}, replay {l.min_replay_rows}-{l.max_replay_rows} rows, eval envs "
                       f"{l.num_eval_envs}, default budget {l.total_env_steps:,} env steps / {l.num_epochs} epochs")
    if what != "presets":
        for err in registry.plugin_errors():
            click.echo(f"warning: {err}", err=True)


def _show_value(value: object) -> str:
    if value is dataclasses.MISSING:
        return "(required)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:_}"
    return repr(value)


def _echo_fields(cls: type, instance: object = None, notes: dict[str, str] | None = None) -> None:
    """One ``path: type = value`` line per field of ``cls`` (nested configs indented under their group),
    each followed by its documentation; ``notes``: field path -> a remark appended to its line."""
    notes = notes or {}
    for row in field_rows(cls, instance):
        depth = row.path.count(".")
        indent = "  " * (depth + 1)
        head = f"{indent}{row.path}: {row.type}" + ("" if row.group else f" = {_show_value(row.value)}")
        if row.path in notes:
            head += f"  [{notes[row.path]}]"
        click.echo(head)
        if row.doc:
            click.echo(textwrap.fill(row.doc, width=110, initial_indent=indent + "    ", subsequent_indent=indent + "    "))


def _describe_algorithm(name: str, entry) -> None:
    algorithm = entry.algorithm
    cls = algorithm.config_cls
    click.echo(f"algorithm {name} [{entry.origin}]: {algorithm.description}")
    click.echo(f"config {cls.__name__}: change a field with --set KEY=VALUE (every chosen algorithm and the loop "
               f"config that has KEY) or --set {name}.KEY=VALUE (this algorithm only); dotted keys reach nested fields")
    notes = {"network": "set by flags, not --set"}
    notes.update({f"network.{field}": flag for field, flag in _NETWORK_FLAG_NAMES.items()})
    _echo_fields(cls, notes=notes)


def _describe_task(name: str, entry) -> None:
    from gcrl_bench.config import PRESETS
    from gcrl_bench.interface import TaskSpec

    spec = entry.spec
    kind = "one of the ten benchmark tasks" if spec.benchmark else "not one of the ten benchmark tasks"
    click.echo(f"task {name} [{entry.origin}], {kind}: {spec.description}")
    click.echo("spec:")
    _echo_fields(TaskSpec, spec)
    click.echo(f"  observation_size: int = {spec.observation_size}")
    click.echo("      state_size + goal_size: the observation is [state, commanded goal].")
    for preset in PRESETS.values():
        if name in preset.per_task:
            shown = ", ".join(f"{k}={_show_value(v)}" for k, v in preset.per_task[name].items())
            click.echo(f"preset {preset.name} changes for this task: {shown}")


def _describe_preset(preset) -> None:
    from gcrl_bench.config import LoopConfig

    click.echo(f"preset {preset.name}: {preset.description}")
    click.echo("loop config (LoopConfig): change a field with --set KEY=VALUE or --set loop.KEY=VALUE; "
               "--env-steps and --epochs set total_env_steps and num_epochs")
    _echo_fields(LoopConfig, preset.loop)
    if preset.per_task:
        click.echo("per-task changes (budgets and sizes):")
        width = max(len(t) for t in preset.per_task)
        for task, change in preset.per_task.items():
            click.echo(f"  {task:<{width}}  " + ", ".join(f"{k}={_show_value(v)}" for k, v in change.items()))


@cli.command()
@click.argument("name")
def describe(name):
    """Print every field of algorithm, task or preset NAME with its documentation and its default (an
    algorithm's config, nested network.* and relabel.* included; a task's spec; a preset's loop config and
    per-task budgets)."""
    from gcrl_bench import registry
    from gcrl_bench.config import PRESETS

    algorithms, tasks = registry.algorithm_entries(), registry.task_entries()
    found = False
    for kind, table in (("algorithm", algorithms), ("task", tasks), ("preset", PRESETS)):
        if name not in table:
            continue
        if found:
            click.echo("")
        found = True
        if kind == "algorithm":
            _describe_algorithm(name, table[name])
        elif kind == "task":
            _describe_task(name, table[name])
        else:
            _describe_preset(table[name])
    if not found:
        known = sorted(algorithms) + sorted(tasks) + list(PRESETS)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(
            f"unknown name {name!r}{hint}: not an algorithm, a task or a preset; algorithms: {', '.join(sorted(algorithms))}; "
            f"tasks: {', '.join(sorted(tasks))}; presets: {', '.join(PRESETS)}"
        )


@cli.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", default=None, help="PDF path (default: RESULTS_DIR/report.pdf).")
@click.option("--reps", default=2000, show_default=True, help="Bootstrap repetitions.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
def report(results_dir, output, reps, seed):
    """Build the PDF report and tables from a results directory."""
    from gcrl_bench import results
    from gcrl_bench.errors import ResultsError
    from gcrl_bench.reports import build_report

    path = Path(results_dir)
    if not (path / "runs").is_dir():
        raise ResultsError(f"{results_dir!r} is not a gcrl-bench results directory (no runs/ folder); "
                           "pass the --out directory of `gcrl-bench run`")
    results.write_scores_csv(path)
    written = build_report(path, output, reps=reps, seed=seed)
    for kind, p in written.items():
        click.echo(f"{kind}: {p}")


_CAMERA_HELP = ("overview: the whole scene from above at an angle (mazes read as their layout); top: straight "
                "down; or the name of a camera in the task's model.")


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write block x epoch heatmaps of grad_norm and branch_ratio per network to this PNG.")
def inspect(run_dir, plot):
    """Print the last epoch's per-block diagnostics of every network of a run and its warnings."""
    from gcrl_bench import diagnostics, results

    rows = results.read_metrics(Path(run_dir) / "metrics.jsonl")
    if not rows:
        raise ConfigError(f"{run_dir}: no metrics.jsonl rows yet; inspect a run that finished an epoch")
    click.echo(diagnostics.format_table(rows[-1]))
    if plot is not None:
        from gcrl_bench.reports import diagnostics as report_diagnostics  # matplotlib: only on this path

        try:
            figure = report_diagnostics.run_heatmaps(rows, f"{Path(run_dir).resolve().name}: per-block diagnostics")
        except ValueError as error:
            raise ConfigError(f"{run_dir}: {error}; nothing to plot") from None
        try:
            figure.savefig(plot, dpi=120)
        except OSError as error:
            raise ConfigError(f"cannot write {plot}: {error.strerror}; choose a writable path") from None
        click.echo(f"wrote {plot}")


@cli.command()
@click.argument("task")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG path.")
@click.option("--seed", default=0, show_default=True, help="Seed of the reset (start noise and goal).")
@click.option("--width", default=640, show_default=True, help="Image width in pixels.")
@click.option("--height", default=480, show_default=True, help="Image height in pixels.")
@click.option("--camera", default="overview", show_default=True, help=_CAMERA_HELP)
@click.option("--evaluation", is_flag=True, help="Draw the goal from the evaluation goal set.")
def show(task, output, seed, width, height, camera, evaluation):
    """Draw TASK from a reset (walls, body, goal marker) into a PNG, without a display."""
    from gcrl_bench import render

    render.choose_gl_backend()  # before anything imports MuJoCo
    _enable_compilation_cache()
    path = render.show(task, output, seed=seed, width=width, height=height, camera=camera, evaluation=evaluation)
    click.echo(f"wrote {path} ({width}x{height}, task {task}, seed {seed})")


@cli.command("render")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Video path: .mp4 or .gif.")
@click.option("--episodes", default=3, show_default=True, help="Evaluation episodes, shown one after another.")
@click.option("--seed", default=0, show_default=True, help="Seed of the episodes' starts and goals.")
@click.option("--fps", type=float, default=None, help="Frames per second (default: real time, one frame per env step).")
@click.option("--width", default=640, show_default=True, help="Frame width in pixels.")
@click.option("--height", default=480, show_default=True, help="Frame height in pixels.")
@click.option("--camera", default="overview", show_default=True, help=_CAMERA_HELP)
def render_(run_dir, output, episodes, seed, fps, width, height, camera):
    """Write a video of a finished run's deterministic policy (RUN_DIR: results/runs/<run_id>)."""
    from gcrl_bench import render

    render.choose_gl_backend()  # before anything imports MuJoCo
    _enable_compilation_cache()
    out = render.render_policy(run_dir, output, episodes=episodes, seed=seed, fps=fps, width=width, height=height,
                               camera=camera)
    click.echo(f"wrote {out['path']}: {out['frames']} frames at {out['fps']:g} fps, {out['episodes']} episodes; "
               f"steps at the goal per episode: {', '.join(map(str, out['time_at_goal']))}")


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="gcrl-bench", standalone_mode=False)
    except TimeBudgetReached as exc:
        click.echo(str(exc))
        sys.exit(3)
    except GcrlBenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare command: its help, as click prints it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # bad option or argument: one line, like every other bad input
        command = exc.ctx.command_path if exc.ctx is not None else "gcrl-bench"
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: completed runs are kept; rerun the same command to finish the rest", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

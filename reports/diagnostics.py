"""The report's diagnostics section: per-layer statistics of the runs' networks as tidy tables and pages.

Every run writes ``diag/<network>/<group>/<statistic>`` to each row of its metrics.jsonl (see
:mod:`gcrl_bench.diagnostics`). The pure functions here turn those rows into tidy pandas tables:

- :func:`long_table`: one row per (run, epoch, network, group, statistic);
- :func:`branch_ratio_table`: branch_norm / input_norm per residual block at the last evaluation, mean
  over seeds, per algorithm, task, network, width and depth;
- :func:`grad_norm_table`: gradient norm per block and epoch of each algorithm's main network
  (:data:`MAIN_NETWORKS`), mean over seeds;
- :func:`effective_rank_table`: effective rank of CRL's phi (sa_encoder) and psi (goal_encoder) per
  epoch, mean over seeds;
- :func:`warnings_table`: every run's summary.json ``warnings``, one row per warning.

Runs whose rows hold no ``diag/`` entry (older results directories, ``--no-diagnostics``) are left out of
these tables and named by :func:`runs_without_diagnostics`; nothing is filled in for them. The page
functions (``*_pages``) draw the tables on A4-landscape matplotlib figures for :mod:`gcrl_bench.reports.report`;
:func:`run_heatmaps` draws one run's block x epoch heatmaps for ``gcrl-bench inspect --plot``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gcrl_bench.results import RunDir, read_json, read_metrics

PREFIX = "diag/"
PAGE_SIZE = (11.69, 8.27)  # A4 landscape, inches (as the rest of the report)
PANELS_PER_PAGE = 6  # 2 x 3
# The network whose gradients the report shows, the first of these an algorithm's runs recorded.
MAIN_NETWORKS = ("sa_encoder", "critic_0", "actor")
REPRESENTATIONS = {"sa_encoder": "phi (sa_encoder)", "goal_encoder": "psi (goal_encoder)"}
RUN_COLUMNS = ("run_id", "algo", "task", "depth", "width", "seed")
LONG_COLUMNS = (*RUN_COLUMNS, "epoch", "env_steps", "network", "group", "block", "statistic", "value")


# ---------------------------------------------------------------------------------------------------------
# Tidy tables


def read_run_metrics(directory: str | Path, run_ids: Sequence[str]) -> dict[str, list[dict]]:
    """The metrics.jsonl rows of each run of a results directory, keyed by run_id."""
    return {run_id: read_metrics(RunDir.of(Path(directory), run_id).metrics) for run_id in run_ids}


def read_run_summaries(directory: str | Path, run_ids: Sequence[str]) -> dict[str, dict]:
    """The summary.json of each run of a results directory ({} where there is none), keyed by run_id."""
    out = {}
    for run_id in run_ids:
        path = RunDir.of(Path(directory), run_id).summary
        out[run_id] = read_json(path) if path.is_file() else {}
    return out


def _block_index(group: str) -> float:
    """3 for ``block_003``; NaN for ``input`` and ``output``."""
    return float(int(group[len("block_"):])) if group.startswith("block_") else math.nan


def long_table(runs: pd.DataFrame, metrics: Mapping[str, list[dict]]) -> pd.DataFrame:
    """Every ``diag/`` value of the runs' metrics rows, one row each (columns :data:`LONG_COLUMNS`).

    Args:
      runs: one row per run with at least the columns of :data:`RUN_COLUMNS` (``Results.runs``).
      metrics: the metrics.jsonl rows of each run, keyed by run_id; a row's ``epoch`` and ``env_steps``
        are carried along (NaN when absent).
    Returns:
      block is the block index (0 for ``block_000``) or NaN for the ``input`` and ``output`` groups.
    """
    records = []
    for run in runs.itertuples(index=False):
        identity = tuple(getattr(run, c) for c in RUN_COLUMNS)
        for number, row in enumerate(metrics.get(run.run_id, []), start=1):
            epoch, steps = row.get("epoch", number), row.get("env_steps", math.nan)
            for key, value in row.items():
                if not key.startswith(PREFIX) or value is None:
                    continue
                network, group, statistic = key[len(PREFIX):].rsplit("/", 2)
                records.append((*identity, epoch, steps, network, group, _block_index(group), statistic, float(value)))
    return pd.DataFrame.from_records(records, columns=list(LONG_COLUMNS))


def runs_without_diagnostics(runs: pd.DataFrame, long: pd.DataFrame) -> list[str]:
    """The run_ids of ``runs`` with no row in ``long`` (no ``diag/`` entry recorded), sorted."""
    return sorted(set(runs["run_id"]) - set(long["run_id"]))


def _last_epoch(long: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last recorded epoch."""
    last = long.groupby("run_id")["epoch"].transform("max")
    return long[long["epoch"] == last]


def branch_ratio_table(long: pd.DataFrame) -> pd.DataFrame:
    """Residual-branch ratio (branch_norm / input_norm) per block at each run's last evaluation.

    Returns:
      columns algo, task, network, width, depth, block (int), branch_ratio (mean over seeds), num_seeds.
    """
    rows = _last_epoch(long)
    rows = rows[rows["statistic"] == "branch_ratio"]
    keys = ["algo", "task", "network", "width", "depth", "block"]
    table = rows.groupby(keys, as_index=False).agg(branch_ratio=("value", "mean"), num_seeds=("seed", "nunique"))
    table["block"] = table["block"].astype(int)
    return table.sort_values(keys, ignore_index=True)


def main_network(networks: Sequence[str]) -> str | None:
    """The first of :data:`MAIN_NETWORKS` among ``networks`` (else the first of them, sorted; None if none)."""
    for name in MAIN_NETWORKS:
        if name in networks:
            return name
    return sorted(networks)[0] if networks else None


def grad_norm_table(long: pd.DataFrame) -> pd.DataFrame:
    """Gradient norm per block and epoch of each algorithm's main network (:func:`main_network`).

    Returns:
      columns algo, task, network, width, depth, epoch, block (int), grad_norm (mean over seeds), num_seeds.
    """
    rows = long[(long["statistic"] == "grad_norm") & long["block"].notna()]
    chosen = {algo: main_network(sorted(set(group["network"]))) for algo, group in rows.groupby("algo")}
    rows = rows[rows["network"] == rows["algo"].map(chosen)]
    keys = ["algo", "task", "network", "width", "depth", "epoch", "block"]
    table = rows.groupby(keys, as_index=False).agg(grad_norm=("value", "mean"), num_seeds=("seed", "nunique"))
    table["block"] = table["block"].astype(int)
    return table.sort_values(keys, ignore_index=True)


def effective_rank_table(long: pd.DataFrame) -> pd.DataFrame:
    """Effective rank of the representations (CRL's phi and psi) per epoch.

    Returns:
      columns algo, task, network, width, depth, epoch, env_steps (mean over seeds), effective_rank (mean
      over seeds), num_seeds.
    """
    rows = long[(long["statistic"] == "effective_rank") & long["network"].isin(list(REPRESENTATIONS))]
    keys = ["algo", "task", "network", "width", "depth", "epoch"]
    table = rows.groupby(keys, as_index=False).agg(env_steps=("env_steps", "mean"), effective_rank=("value", "mean"),
                                                   num_seeds=("seed", "nunique"))
    return table.sort_values(keys, ignore_index=True)


def warnings_table(runs: pd.DataFrame, summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per warning of each run's summary.json (columns run_id, algo, task, depth, width, seed,
    warning), in run order; a summary without a ``warnings`` list contributes nothing."""
    records = []
    for run in runs.itertuples(index=False):
        for warning in summaries.get(run.run_id, {}).get("warnings") or []:
            records.append((*(getattr(run, c) for c in RUN_COLUMNS), str(warning)))
    return pd.DataFrame.from_records(records, columns=[*RUN_COLUMNS, "warning"])


def display_warnings_table(warnings: pd.DataFrame) -> pd.DataFrame:
    """The warnings table with the report's column names."""
    return pd.DataFrame({"Run": warnings["run_id"], "Depth": warnings["depth"].astype(str),
                         "Seed": warnings["seed"].astype(str), "Warning": warnings["warning"]})


# ---------------------------------------------------------------------------------------------------------
# Pages


def skipped_note(skipped: Sequence[str]) -> str:
    """The sentence naming the runs left out of the diagnostics pages ("" when none)."""
    if not skipped:
        return ""
    return (f"{len(skipped)} run(s) recorded no diagnostics (older results or --no-diagnostics) and are not "
            f"drawn: {', '.join(skipped)}.")


def _page(title: str, panels: int, note: str) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle(title, fontsize=14, weight="bold")
    columns = min(3, panels)
    grid = figure.subplots((panels + columns - 1) // columns, columns, squeeze=False)
    for axes in grid.flat[panels:]:
        axes.axis("off")
    if note:
        figure.supxlabel("\n".join(textwrap.wrap(note, 170)), fontsize=8, color="0.25")
    return figure, grid


def note_page(title: str, note: str) -> Figure:
    """A page with only a title and a note (e.g. no run recorded diagnostics)."""
    figure = Figure(figsize=PAGE_SIZE)
    figure.text(0.04, 0.94, title, fontsize=16, weight="bold")
    figure.text(0.04, 0.85, "\n".join(textwrap.wrap(note, 130)), fontsize=11, va="top")
    return figure


def _depth_colours(depths: Sequence[int]) -> dict[int, Any]:
    from matplotlib import colormaps

    depths = sorted(set(int(d) for d in depths))
    shades = np.linspace(0.35, 0.95, len(depths)) if len(depths) > 1 else [0.7]
    return {d: colormaps["viridis_r"](s) for d, s in zip(depths, shades)}


def branch_ratio_pages(table: pd.DataFrame, note: str = "") -> list[Figure]:
    """Branch ratio against block index, one line per (width, depth), one panel per (algo, task, network)."""
    title = "Diagnostics: residual-branch ratio |h| / |x| by block (last evaluation, mean over seeds)"
    panels = list(table.groupby(["algo", "task", "network"]))
    colour = _depth_colours(table["depth"]) if len(table) else {}
    pages = []
    for start in range(0, len(panels), PANELS_PER_PAGE):
        chunk = panels[start:start + PANELS_PER_PAGE]
        figure, grid = _page(title, len(chunk), note)
        for axes, ((algo, task, network), rows) in zip(grid.flat, chunk):
            for (width, depth), line in rows.groupby(["width", "depth"]):
                seeds = int(line["num_seeds"].min())
                axes.plot(line["block"], line["branch_ratio"], marker="o", color=colour[int(depth)],
                          label=f"depth {depth}, width {width} (n={seeds})")
            axes.set_title(f"{algo} / {task} / {network}", fontsize=10)
            axes.set_xlabel("residual block (0 = next to the input)")
            axes.set_ylabel("branch norm / input norm")
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.set_ylim(bottom=0)
            axes.legend(fontsize=7)
        pages.append(figure)
    return pages


def _heatmap(figure: Figure, axes, matrix: np.ndarray, epochs: Sequence[int], label: str, log: bool,
             limits: tuple[float, float] | None = None) -> None:
    """matrix (blocks, epochs) as an image, block 0 at the bottom; log: logarithmic colour scale; limits:
    the colour scale's (min, max), default the matrix's own."""
    from matplotlib.colors import LogNorm, Normalize

    finite = matrix[np.isfinite(matrix)]
    low, high = limits if limits is not None else ((finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    high = max(high, low * 1.0001 if low > 0 else low + 1e-12)
    norm = LogNorm(vmin=low, vmax=high) if log and low > 0 else Normalize(vmin=low, vmax=high)
    image = axes.imshow(matrix, aspect="auto", origin="lower", interpolation="nearest", norm=norm, cmap="magma",
                        extent=(min(epochs) - 0.5, max(epochs) + 0.5, -0.5, matrix.shape[0] - 0.5))
    axes.set_xlabel("epoch")
    axes.set_ylabel("residual block")
    step = max(1, matrix.shape[0] // 8)
    axes.set_yticks(range(0, matrix.shape[0], step))
    axes.xaxis.get_major_locator().set_params(integer=True)
    figure.colorbar(image, ax=axes, label=label, shrink=0.9)


def _matrix(rows: pd.DataFrame, value: str) -> tuple[np.ndarray, list[int]]:
    """(blocks, epochs) matrix of ``value`` from rows with block and epoch columns, and the epochs."""
    pivot = rows.pivot_table(index="block", columns="epoch", values=value, aggfunc="mean").sort_index()
    pivot = pivot.reindex(columns=sorted(pivot.columns))
    return pivot.to_numpy(dtype=float), [int(e) for e in pivot.columns]


def grad_norm_pages(table: pd.DataFrame, note: str = "") -> list[Figure]:
    """One block x epoch heatmap of the gradient norm per (algo, task, network, width, depth)."""
    title = "Diagnostics: gradient norm by block over training (main network, mean over seeds)"
    panels = list(table.groupby(["algo", "task", "network", "width", "depth"]))
    shared = {key: (rows["grad_norm"].min(), rows["grad_norm"].max())
              for key, rows in table.groupby(["algo", "task", "network"])}
    pages = []
    for start in range(0, len(panels), PANELS_PER_PAGE):
        chunk = panels[start:start + PANELS_PER_PAGE]
        figure, grid = _page(title, len(chunk), note)
        for axes, ((algo, task, network, width, depth), rows) in zip(grid.flat, chunk):
            matrix, epochs = _matrix(rows, "grad_norm")
            _heatmap(figure, axes, matrix, epochs, "grad norm (log colour, one scale for all depths)", log=True,
                     limits=shared[(algo, task, network)])
            axes.set_title(f"{algo} / {task} / {network}\ndepth {depth}, width {width} "
                           f"(n={int(rows['num_seeds'].min())})", fontsize=10)
        pages.append(figure)
    return pages


def effective_rank_pages(table: pd.DataFrame, note: str = "") -> list[Figure]:
    """Effective rank of phi (solid) and psi (dashed) against epoch, one line per depth, per (algo, task)."""
    from gcrl_bench.diagnostics import COLLAPSE_RANK  # the warning's threshold (imports jax: only here)

    title = "Diagnostics: representation effective rank over training (mean over seeds)"
    panels = list(table.groupby(["algo", "task"]))
    colour = _depth_colours(table["depth"]) if len(table) else {}
    pages = []
    for start in range(0, len(panels), PANELS_PER_PAGE):
        chunk = panels[start:start + PANELS_PER_PAGE]
        figure, grid = _page(title, len(chunk), note)
        for axes, ((algo, task), rows) in zip(grid.flat, chunk):
            lines = sorted(rows.groupby(["network", "width", "depth"]),
                           key=lambda item: (list(REPRESENTATIONS).index(item[0][0]), *item[0][1:]))
            for (network, width, depth), line in lines:
                axes.plot(line["epoch"], line["effective_rank"], color=colour[int(depth)], marker=".",
                          linestyle="-" if network == "sa_encoder" else "--",
                          label=f"{REPRESENTATIONS.get(network, network)}, depth {depth}, width {width}")
            axes.axhline(COLLAPSE_RANK, color="tab:red", linestyle=":", linewidth=1,
                         label=f"collapse warning below {COLLAPSE_RANK:g}")
            axes.set_title(f"{algo} / {task}", fontsize=10)
            axes.set_xlabel("epoch")
            axes.set_ylabel("effective rank")
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.set_ylim(bottom=0)
            axes.legend(fontsize=7)
        pages.append(figure)
    return pages


def section_pages(runs: pd.DataFrame, metrics: Mapping[str, list[dict]]) -> list[Figure]:
    """The diagnostics figures of the report: branch ratio, gradient norm, effective rank (each only when
    some run recorded it), or one note page when no run recorded diagnostics."""
    long = long_table(runs, metrics)
    skipped = runs_without_diagnostics(runs, long)
    note = skipped_note(skipped)
    if long.empty:
        return [note_page("Diagnostics", "No run recorded per-layer diagnostics (older results or "
                                         "--no-diagnostics), so this section has no figures. " + note)]
    pages = []
    ratio, grads, ranks = branch_ratio_table(long), grad_norm_table(long), effective_rank_table(long)
    if len(ratio):
        pages += branch_ratio_pages(ratio, note)
    if len(grads):
        pages += grad_norm_pages(grads, note)
    if len(ranks):
        pages += effective_rank_pages(ranks, note)
    return pages


# ---------------------------------------------------------------------------------------------------------
# One run (gcrl-bench inspect --plot)


RUN_HEATMAP_STATISTICS = (("grad_norm", True), ("branch_ratio", False))  # (statistic, log colour)


def run_block_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The per-block statistics of one run's metrics rows: columns epoch, network, block, statistic, value."""
    runs = pd.DataFrame([{"run_id": "run", "algo": "", "task": "", "depth": 0, "width": 0, "seed": 0}])
    long = long_table(runs, {"run": list(rows)})
    return long[long["block"].notna()][["epoch", "network", "block", "statistic", "value"]].reset_index(drop=True)


def run_heatmaps(rows: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """One run's block x epoch heatmaps: a row of panels per network, one panel per statistic of
    :data:`RUN_HEATMAP_STATISTICS`. Raises ValueError when the rows hold no per-block statistic."""
    table = run_block_table(rows)
    table = table[table["statistic"].isin([s for s, _ in RUN_HEATMAP_STATISTICS])]
    if table.empty:
        raise ValueError("the run recorded no per-block diagnostics (it used --no-diagnostics)")
    networks = sorted(set(table["network"]))
    figure = Figure(figsize=(5.5 * len(RUN_HEATMAP_STATISTICS), 3.2 * len(networks) + 0.6), layout="constrained")
    figure.suptitle(title, fontsize=12, weight="bold")
    grid = figure.subplots(len(networks), len(RUN_HEATMAP_STATISTICS), squeeze=False)
    for i, network in enumerate(networks):
        for j, (statistic, log) in enumerate(RUN_HEATMAP_STATISTICS):
            axes = grid[i, j]
            cells = table[(table["network"] == network) & (table["statistic"] == statistic)]
            if cells.empty:
                axes.axis("off")
                continue
            matrix, epochs = _matrix(cells, "value")
            _heatmap(figure, axes, matrix, epochs, statistic + (" (log colour)" if log else ""), log=log)
            axes.set_title(f"{network}: {statistic}", fontsize=10)
    return figure

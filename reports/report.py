"""The PDF report of a results directory, with its tables as CSV, Markdown and LaTeX beside it.

Pages, in order:
1. title page: what was run (algorithms, tasks, depths, widths, seeds, env steps, presets,
   package and code versions, hardware) and how the statistics were computed;
2. tables: time at goal per task and configuration, then the normalised aggregate over tasks;
3. depth scaling: score vs depth (log2) per task and aggregated, with intervals; critical depths;
4. cost: aggregate score vs parameter count (depth and width scaling), wall-clock hours vs depth;
5. comparisons: probability of improvement, performance profiles, sample-efficiency (IQM) curves,
   and the probability-of-improvement table;
6. learning curves: evaluation time at goal against env steps, one panel per task;
7. diagnostics (:mod:`gcrl_bench.reports.diagnostics`): residual-branch ratio by block, gradient norm by
   block over training, representation effective rank over training, and every run's warnings;
8. appendix: every included run; the runs that are not included (in progress, failed) and why.
When the results hold more than one batch size, page 3 ends with the batch size x depth table and its
figure (time at goal vs depth, one line per batch size, per task).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import os
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from gcrl_bench.errors import ConfigError, ResultsError
from gcrl_bench.reports import diagnostics, scaling, stats, tables
from gcrl_bench.reports.results import Results, load_results
from gcrl_bench.results import RUN_KEY

PAGE_SIZE = (11.69, 8.27)  # A4 landscape, inches
TABLE_ROWS_PER_PAGE = 24
CURVE_PANELS_PER_PAGE = 4  # 2 x 2


@dataclasses.dataclass(frozen=True)
class CurveLine:
    """One configuration's mean learning curve on one task.

    grid, mean, lower, upper have shape (num_points,); lower/upper bound the 95% bootstrap
    interval of the mean over seeds (equal to the mean when there is a single seed).
    """

    algo: str
    depth: int
    width: int
    num_seeds: int
    grid: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def learning_curves(results: Results, *, reps: int, seed: int) -> dict[str, list[CurveLine]]:
    """Evaluation time at goal against env steps, per task and configuration.

    Each configuration's runs are aligned with `stats.align_curves` (union of their evaluation
    steps within the range all of them cover, linear interpolation), then averaged over seeds
    with a pointwise stratified-bootstrap 95% interval (`stats.curve_band`).

    Returns:
        {task: [CurveLine per (algo, depth, width)]}, tasks and lines sorted.
    """
    evaluations = results.evaluations[results.evaluations["metric"] == "time_at_goal"]
    curves: dict[str, list[CurveLine]] = {}
    for (task, algo, depth, width), rows in evaluations.groupby(["task", "algo", "depth", "width"]):
        runs = [
            (run["env_steps"].to_numpy(), run["value"].to_numpy())
            for _, run in rows.sort_values("env_steps").groupby("seed")
        ]
        grid, values = stats.align_curves(runs)
        mean, lower, upper = stats.curve_band(
            values, rng=tables.cell_rng(seed, "curve", task, algo, depth, width), reps=reps
        )
        curves.setdefault(task, []).append(CurveLine(algo, int(depth), int(width), len(runs), grid, mean, lower, upper))
    return curves


# ----------------------------------------------------------------------------------------------
# Writing files


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Writes through `write(temporary_path)` in path's directory, then renames onto path, so a
    reader never sees a half-written file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(descriptor)
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror}; choose a writable output location") from error
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except OSError as error:
        raise ResultsError(f"cannot write {path}: {error.strerror}; choose a writable output location") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def _write_text(path: Path, text: str) -> None:
    _write_atomically(path, lambda temporary: temporary.write_text(text))


# ----------------------------------------------------------------------------------------------
# Pages


@contextlib.contextmanager
def _print_style() -> Iterator[None]:
    """seaborn's white-grid style at a size readable on paper, applied to figures made inside."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.3), "pdf.fonttype": 42}
    with matplotlib.rc_context(rc):
        yield


def _distinct(values, template: str = "{}") -> str:
    """The distinct values, sorted (numbers numerically), formatted with `template`, comma-separated."""
    unique = sorted(set(values))
    return ", ".join(template.format(v) for v in unique) if unique else "-"


def _title_page(results: Results, *, reps: int, seed: int, num_curve_points: str) -> Figure:
    runs, configs = results.runs, list(results.configs.values())
    versions: dict[str, set[str]] = {}
    for config in configs:
        for package, version in (config.get("versions") or {}).items():
            versions.setdefault(str(package), set()).add(str(version))
    hardware = set()
    for config in configs:
        machine = config.get("hardware") or {}
        hardware.add(f"{machine.get('platform', '?')} / {machine.get('device', '?')} ({machine.get('cpu_count', '?')} CPUs)")
    lines = [
        ("Results directory", str(results.directory)),
        ("Runs", f"{len(runs)} complete and included; {len(results.not_included)} not included (listed on the last page)"),
        ("Algorithms", _distinct(runs["algo"])),
        ("Tasks", _distinct(runs["task"])),
        ("Depths", _distinct(runs["depth"])),
        ("Widths", _distinct(runs["width"])),
        ("Batch sizes", _distinct(runs["batch_size"])),
        ("Seeds", _distinct(runs["seed"])),
        ("Presets", _distinct(runs["preset"])),
        ("Episode length", _distinct(runs["episode_length"])),
        ("Env steps planned", _distinct(runs["env_steps_planned"], "{:,}")),
        ("Env steps at the end", _distinct(runs["env_steps"], "{:,}")),
        ("Package versions", "; ".join(f"{p} {_distinct(v)}" for p, v in sorted(versions.items())) or "-"),
        ("Code version", _distinct(str(c.get("code_version", "?")) for c in configs)),
        ("Hardware", "; ".join(sorted(hardware))),
        ("Score of a run", "time at goal (steps within the success radius out of the episode length), "
                           "mean over the run's last 5 evaluations"),
        ("Aggregate over tasks", "normalised score = score / episode length, in [0, 1]; a configuration's runs form "
                                 "a (runs x tasks) matrix: with unequal seed counts each task keeps its lowest seeds up "
                                 "to the smallest count (the runs left out are named under the aggregate table)"),
        ("Comparisons", "probability of improvement: each depth vs depth 4 of the same algorithm and width, each "
                        "algorithm vs crl at the same depth and width, over the tasks both ran; critical depth: "
                        "smallest depth whose interval lies above depth 4's"),
        ("Sample efficiency", "IQM over runs and tasks of the normalised time at goal; all runs of a configuration "
                              "interpolated onto the union of their evaluation steps within the range every run covers"),
        ("Intervals", f"95% percentile stratified bootstrap over seeds (rliable "
                      f"{importlib.metadata.version('rliable')}), {reps:,} resamples, seed {seed}"),
        ("Learning curves", "each configuration's runs are linearly interpolated onto the union of their "
                            "evaluation steps within the range all of them cover; line = mean over seeds, "
                            f"band = 95% pointwise bootstrap interval ({num_curve_points})"),
    ]
    figure = Figure(figsize=PAGE_SIZE)
    figure.text(0.06, 0.92, "gcrl-bench report", fontsize=24, weight="bold")
    figure.text(0.06, 0.885, f"generated {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", fontsize=10, color="0.35")
    wrapped = [(name, textwrap.wrap(value, 120) or ["-"]) for name, value in lines]
    # Shrink the spacing (and the font with it) when many versions or hosts would overrun the page.
    line_height = min(0.034, 0.78 / sum(len(text) + 0.25 for _, text in wrapped))
    font_size = 10 * line_height / 0.034
    y = 0.83
    for name, text in wrapped:
        figure.text(0.06, y, name, fontsize=font_size, weight="bold", va="top")
        figure.text(0.25, y, "\n".join(text), fontsize=font_size, va="top")
        y -= line_height * (len(text) + 0.25)
    return figure


def _table_pages(title: str, table: pd.DataFrame, note: str) -> list[Figure]:
    pages = []
    chunks = [table.iloc[i:i + TABLE_ROWS_PER_PAGE] for i in range(0, max(len(table), 1), TABLE_ROWS_PER_PAGE)]
    for number, chunk in enumerate(chunks, start=1):
        figure = Figure(figsize=PAGE_SIZE)
        suffix = f" ({number}/{len(chunks)})" if len(chunks) > 1 else ""
        figure.text(0.04, 0.94, title + suffix, fontsize=16, weight="bold")
        figure.text(0.04, 0.04, "\n".join(textwrap.wrap(note, 150)), fontsize=9, color="0.25", va="bottom")
        axes = figure.add_axes((0.04, 0.12, 0.92, 0.78))
        axes.axis("off")
        if len(chunk):
            # Column widths in proportion to their longest text plus one character of padding on
            # each side; the font shrinks when the rows would not fit across the page (a character
            # is taken as 0.62 em wide, generous for DejaVu Sans).
            characters = [max(len(str(c)), *(len(str(v)) for v in chunk[c])) + 2 for c in chunk.columns]
            available_points = 0.92 * PAGE_SIZE[0] * 72
            font_size = min(9.0, available_points / (0.62 * sum(characters)))
            used = min(1.0, 0.62 * font_size * sum(characters) / available_points)
            drawn = axes.table(cellText=chunk.to_numpy(), colLabels=list(chunk.columns), loc="upper center",
                               cellLoc="left", colWidths=[used * n / sum(characters) for n in characters])
            drawn.auto_set_font_size(False)
            drawn.set_fontsize(font_size)
            drawn.scale(1.0, 1.5)
            for (row, column), cell in drawn.get_celld().items():
                cell.PAD = 1.0 / characters[column]  # one character, as a fraction of the cell width
                if row == 0:
                    cell.set_text_props(weight="bold")
                    cell.set_facecolor("0.9")
        else:
            axes.text(0.0, 1.0, "none", va="top", fontsize=11)
        pages.append(figure)
    return pages


def _steps_scale(max_steps: float) -> tuple[float, str]:
    if max_steps >= 1e6:
        return 1e6, "environment steps (millions)"
    if max_steps >= 1e3:
        return 1e3, "environment steps (thousands)"
    return 1.0, "environment steps"


def _configuration_colours(configurations: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], tuple]:
    """One hue per algorithm, darker for larger (width, depth), so depth scaling reads as a gradient."""
    algos = sorted({algo for algo, _, _ in configurations})
    hues = dict(zip(algos, sns.color_palette("colorblind" if len(algos) <= 10 else "husl", len(algos))))
    colours = {}
    for algo in algos:
        sizes = sorted((width, depth) for a, depth, width in configurations if a == algo)
        # Blend towards white: the smallest network gets 55% white, the largest the pure hue.
        for whiteness, (width, depth) in zip(np.linspace(0.55, 0.0, len(sizes)) if len(sizes) > 1 else [0.0], sizes):
            colours[(algo, depth, width)] = tuple((1 - whiteness) * np.asarray(hues[algo]) + whiteness)
    return colours


def _curve_pages(curves: dict[str, list[CurveLine]], results: Results) -> list[Figure]:
    configurations = sorted({(line.algo, line.depth, line.width) for lines in curves.values() for line in lines})
    colour = _configuration_colours(configurations)
    max_steps = max((float(line.grid.max()) for lines in curves.values() for line in lines if line.grid.size), default=0.0)
    scale, x_label = _steps_scale(max_steps)
    tasks = sorted(curves)
    pages = []
    for start in range(0, len(tasks), CURVE_PANELS_PER_PAGE):
        figure = Figure(figsize=PAGE_SIZE, layout="constrained")
        figure.suptitle("Learning curves: evaluation time at goal", fontsize=14, weight="bold")
        handles: dict[tuple[str, int, int], Any] = {}
        page_tasks = tasks[start:start + CURVE_PANELS_PER_PAGE]
        grid = figure.subplots((len(page_tasks) + 1) // 2, 2, squeeze=False)
        for axes, task in zip(grid.flat, page_tasks + [None]):
            if task is None:
                axes.axis("off")
                continue
            for line in curves[task]:
                key = (line.algo, line.depth, line.width)
                x = line.grid / scale
                (drawn,) = axes.plot(x, line.mean, color=colour[key], linewidth=1.8, marker="." if x.size < 3 else None)
                handles.setdefault(key, drawn)
                if line.num_seeds > 1:
                    axes.fill_between(x, line.lower, line.upper, color=colour[key], alpha=0.2, linewidth=0)
            lengths = sorted(set(results.runs.loc[results.runs["task"] == task, "episode_length"]))
            out_of = f" out of {lengths[0]}" if len(lengths) == 1 else ""
            axes.set_title(task)
            axes.set_xlabel(x_label)
            axes.set_ylabel(f"time at goal (steps{out_of})")
            top = max(axes.get_ylim()[1], 1.0)
            axes.set_ylim(-0.02 * top, top)  # a curve at 0 stays visible above the axis line
        ordered = [key for key in configurations if key in handles]
        figure.legend([handles[key] for key in ordered], [f"{a}, depth {d}, width {w}" for a, d, w in ordered],
                      loc="outside lower center", ncols=min(3, len(ordered)), fontsize=9,
                      title="line: mean over seeds; band: 95% bootstrap CI of the mean (seed counts in the table)",
                      title_fontsize=9)
        pages.append(figure)
    return pages


def _configuration_label(algo: str, depth: int | None, width: int) -> str:
    return f"{algo}, width {width}" if depth is None else f"{algo}, depth {depth}, width {width}"


def _log2_depth_axis(axes, depths: list[int]) -> None:
    axes.set_xscale("log", base=2)
    axes.set_xticks(depths)
    axes.set_xticklabels([str(d) for d in depths])
    axes.minorticks_off()
    axes.set_xlim(min(depths) / 1.4, max(depths) * 1.4)  # markers and error bars clear of the frame
    axes.set_xlabel("network depth (layers, log2 scale)")


def _depth_scaling_pages(task_cells: pd.DataFrame, aggregates: pd.DataFrame) -> list[Figure]:
    """Score vs depth with 95% intervals: the aggregate IQM first, then one panel per task; one line
    per (algo, width)."""
    lines = sorted({(a, int(w)) for a, w in aggregates[["algo", "width"]].itertuples(index=False)})
    hues = dict(zip(lines, sns.color_palette("colorblind", len(lines))))
    depths = sorted({int(d) for d in aggregates["depth"]})
    panels: list[tuple[str, pd.DataFrame, str, str, str, str]] = [
        ("aggregate over tasks", aggregates, "iqm", "iqm_ci95_low", "iqm_ci95_high", "IQM of normalised score (0-1)")]
    for task, cells in task_cells.groupby("task"):
        out_of = f" out of {cells['episode_length'].iloc[0]}" if cells["episode_length"].nunique() == 1 else ""
        panels.append((task, cells, "mean", "ci95_low", "ci95_high", f"time at goal (steps{out_of})"))
    pages = []
    per_page = 6
    for start in range(0, len(panels), per_page):
        chunk = panels[start:start + per_page]
        figure = Figure(figsize=PAGE_SIZE, layout="constrained")
        figure.suptitle("Depth scaling: score vs network depth (points: estimate; bars: 95% bootstrap CI)",
                        fontsize=14, weight="bold")
        grid = figure.subplots((len(chunk) + 2) // 3, 3, squeeze=False)
        handles = {}
        for axes, panel in zip(grid.flat, chunk + [None] * (grid.size - len(chunk))):
            if panel is None:
                axes.axis("off")
                continue
            title, cells, value, low, high, y_label = panel
            for key in lines:
                rows = cells[(cells["algo"] == key[0]) & (cells["width"] == key[1])].sort_values("depth")
                if rows.empty:
                    continue
                y = rows[value].to_numpy(float)
                errors = np.vstack([y - rows[low].to_numpy(float), rows[high].to_numpy(float) - y])
                drawn = axes.errorbar(rows["depth"], y, yerr=errors, color=hues[key], marker="o", capsize=4, linewidth=1.6)
                handles.setdefault(key, drawn)
            _log2_depth_axis(axes, depths)
            axes.set_title(title)
            axes.set_ylabel(y_label)
            top = max(axes.get_ylim()[1], 1e-3)
            axes.set_ylim(-0.04 * top, top * 1.05)
        figure.legend([handles[k] for k in lines if k in handles], [_configuration_label(a, None, w) for a, w in lines if (a, w) in handles],
                      loc="outside lower center", ncols=min(4, len(handles)), fontsize=9)
        pages.append(figure)
    return pages


def _batch_depth_pages(cells: pd.DataFrame) -> list[Figure]:
    """Time at goal vs depth with 95% intervals, one panel per task, one line per (algo, width, batch size)
    (``cells``: `tables.batch_depth_table`)."""
    lines = sorted({(a, int(w), int(b)) for a, w, b in cells[["algo", "width", "batch_size"]].itertuples(index=False)})
    hues = dict(zip(lines, sns.color_palette("colorblind", len(lines))))
    depths = sorted({int(d) for d in cells["depth"]})
    tasks = sorted(set(cells["task"]))
    pages, per_page = [], 6
    for start in range(0, len(tasks), per_page):
        chunk = tasks[start:start + per_page]
        figure = Figure(figsize=PAGE_SIZE, layout="constrained")
        figure.suptitle("Batch size x depth: time at goal vs network depth (bars: 95% bootstrap CI over seeds)",
                        fontsize=14, weight="bold")
        grid = figure.subplots((len(chunk) + 2) // 3, 3, squeeze=False)
        handles = {}
        for axes, task in zip(grid.flat, chunk + [None] * (grid.size - len(chunk))):
            if task is None:
                axes.axis("off")
                continue
            task_cells = cells[cells["task"] == task]
            for key in lines:
                rows = task_cells[(task_cells["algo"] == key[0]) & (task_cells["width"] == key[1])
                                  & (task_cells["batch_size"] == key[2])].sort_values("depth")
                if rows.empty:
                    continue
                y = rows["mean"].to_numpy(float)
                errors = np.vstack([y - rows["ci95_low"].to_numpy(float), rows["ci95_high"].to_numpy(float) - y])
                handles.setdefault(key, axes.errorbar(rows["depth"], y, yerr=errors, color=hues[key], marker="o",
                                                      capsize=4, linewidth=1.6))
            _log2_depth_axis(axes, depths)
            axes.set_title(task)
            axes.set_ylabel("time at goal (steps)")
            top = max(axes.get_ylim()[1], 1e-3)
            axes.set_ylim(-0.04 * top, top * 1.05)
        figure.legend([handles[k] for k in lines if k in handles],
                      [f"{_configuration_label(a, None, w)}, batch size {b}" for a, w, b in lines if (a, w, b) in handles],
                      loc="outside lower center", ncols=min(4, len(handles)), fontsize=9)
        pages.append(figure)
    return pages


def _cost_page(results: Results, aggregates: pd.DataFrame) -> Figure:
    """Parameters vs aggregate IQM (width vs depth scaling, the paper's Fig. 4), and wall-clock hours vs depth."""
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("Cost of scale: parameters and wall-clock time", fontsize=14, weight="bold")
    left, right = figure.subplots(1, 2)
    params = results.runs.groupby(["algo", "depth", "width"])["param_count"].mean()
    algos = sorted(set(aggregates["algo"]))
    widths = sorted({int(w) for w in aggregates["width"]})
    markers = dict(zip(widths, "osD^v<>p*h"))
    hues = dict(zip(algos, sns.color_palette("colorblind", len(algos))))
    for algo in algos:
        for width in widths:
            rows = aggregates[(aggregates["algo"] == algo) & (aggregates["width"] == width)].sort_values("depth")
            if rows.empty:
                continue
            x = np.array([params[(algo, d, width)] for d in rows["depth"]], dtype=float)
            y = rows["iqm"].to_numpy(float)
            errors = np.vstack([y - rows["iqm_ci95_low"].to_numpy(float), rows["iqm_ci95_high"].to_numpy(float) - y])
            left.errorbar(x, y, yerr=errors, color=hues[algo], marker=markers[width], capsize=4, linewidth=1.4,
                          label=f"{algo}, width {width} (depths {', '.join(map(str, rows['depth']))})")
            for xi, yi, depth in zip(x, y, rows["depth"]):
                left.annotate(f"d{depth}", (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("network parameters (all networks of the agent, log scale)")
    left.set_ylabel("IQM of normalised score (0-1), 95% CI")
    left.set_title("score vs parameters (depth and width scaling)")
    left.legend(fontsize=8)
    longest = float(np.nanmax(results.runs["wall_time_s"])) if results.runs["wall_time_s"].notna().any() else 0.0
    time_unit, seconds_per_unit = ("hours", 3600.0) if longest >= 7200 else ("minutes", 60.0) if longest >= 120 else ("seconds", 1.0)
    hours = results.runs.assign(hours=results.runs["wall_time_s"] / seconds_per_unit)
    depths = sorted({int(d) for d in hours["depth"]})
    for (algo, width, task), rows in hours.groupby(["algo", "width", "task"]):
        per_depth = rows.groupby("depth")["hours"].agg(["mean", "min", "max"]).reset_index()
        y = per_depth["mean"].to_numpy(float)
        errors = np.vstack([y - per_depth["min"].to_numpy(float), per_depth["max"].to_numpy(float) - y])
        right.errorbar(per_depth["depth"], y, yerr=errors, marker=markers[int(width)], capsize=3, linewidth=1.2,
                       label=f"{task} ({algo}, width {width})")
    _log2_depth_axis(right, depths)
    right.set_ylabel(f"wall-clock time per run ({time_unit}; bars: min-max over seeds)")
    right.set_title("training time vs depth (excluding compilation)")
    right.legend(fontsize=8)
    return figure


def _comparison_page(improvements: pd.DataFrame, profiles: list, efficiency: list) -> Figure:
    """Probability of improvement, performance profiles and sample-efficiency curves on one page."""
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("Comparisons over all tasks (normalised scores, 95% stratified-bootstrap CIs)", fontsize=14, weight="bold")
    poi_axes, profile_axes, efficiency_axes = figure.subplots(1, 3)
    configurations = sorted({(b.algo, b.depth, b.width) for b in profiles} | {(b.algo, b.depth, b.width) for b in efficiency})
    colour = _configuration_colours(configurations)
    if improvements.empty:
        poi_axes.text(0.5, 0.5, "no comparison: needs depth 4 and another depth\n(or crl and another algorithm)",
                      ha="center", va="center", fontsize=9, transform=poi_axes.transAxes)
        poi_axes.set_yticks([])
    else:
        labels = [f"{r.algo} d{r.depth} vs {r.versus_algo} d{r.versus_depth} (w{r.width})" for r in improvements.itertuples()]
        y = np.arange(len(improvements))[::-1]
        poi_axes.hlines(y, improvements["ci95_low"], improvements["ci95_high"], linewidth=6, color="0.6")
        poi_axes.plot(improvements["probability"], y, "o", color="black")
        poi_axes.set_yticks(y)
        poi_axes.set_yticklabels(labels, fontsize=8)
    poi_axes.axvline(0.5, color="tab:red", linestyle="--", linewidth=1)
    poi_axes.set_xlim(0, 1)
    poi_axes.set_xlabel("P(X > Y)\n(dashed: 0.5, no difference)")
    poi_axes.set_title("probability of improvement")
    for band in profiles:
        key = (band.algo, band.depth, band.width)
        profile_axes.plot(band.x, band.y, color=colour[key], linewidth=1.8, label=_configuration_label(*key))
        profile_axes.fill_between(band.x, band.lower, band.upper, color=colour[key], alpha=0.2, linewidth=0)
    profile_axes.set_xlabel("normalised score threshold tau\n(axis up to the best run's score)")
    profile_axes.set_ylabel("fraction of runs with score > tau")
    profile_axes.set_title("performance profile")
    profile_axes.set_ylim(-0.02, 1.02)
    profile_axes.legend(fontsize=8)
    max_steps = max((float(b.x.max()) for b in efficiency), default=0.0)
    scale, x_label = _steps_scale(max_steps)
    for band in efficiency:
        key = (band.algo, band.depth, band.width)
        efficiency_axes.plot(band.x / scale, band.y, color=colour[key], linewidth=1.8, marker="." if band.x.size < 6 else None,
                             label=_configuration_label(*key))
        efficiency_axes.fill_between(band.x / scale, band.lower, band.upper, color=colour[key], alpha=0.2, linewidth=0)
    efficiency_axes.set_xlabel(x_label)
    efficiency_axes.set_ylabel("IQM of normalised time at goal (0-1)")
    efficiency_axes.set_title("sample efficiency")
    top = max(efficiency_axes.get_ylim()[1], 1e-3)
    efficiency_axes.set_ylim(-0.04 * top, top * 1.05)
    efficiency_axes.legend(fontsize=8)
    return figure


def _per_run_table(results: Results) -> pd.DataFrame:
    runs = results.runs

    def number(value: float, template: str) -> str:
        return "-" if not np.isfinite(value) else template.format(value)

    return pd.DataFrame({
        "Run": runs["run_id"],
        "Batch size": runs["batch_size"].astype(str),
        "Seed": runs["seed"].astype(str),
        "Env steps": [f"{int(v):,}" for v in runs["env_steps"]],
        "Time at goal": [f"{v:.1f} / {n}" for v, n in zip(runs["score"], runs["episode_length"])],
        "Success any": [number(v, "{:.2f}") for v in runs["success_any_last5"]],
        "Success at end": [number(v, "{:.2f}") for v in runs["success_at_end_last5"]],
        "Wall clock (s)": [number(v, "{:,.1f}") for v in runs["wall_time_s"]],
        "Parameters": [number(v, "{:,.0f}") for v in runs["param_count"]],
    })


def _not_included_table(results: Results) -> pd.DataFrame:
    rows = results.not_included

    def text(value: Any, number: bool = False) -> str:
        if value is None or pd.isna(value):
            return "-"
        return f"{int(value):,}" if number else str(value)

    return pd.DataFrame({
        "Run": rows["run_id"],
        **{name.replace("_", " ").capitalize(): [text(v) for v in rows[name]] for name in RUN_KEY},
        "Last evaluation (env steps)": [text(v, number=True) for v in rows["last_env_steps"]],
        "Planned env steps": [text(v, number=True) for v in rows["env_steps_planned"]],
        "Reason": rows["reason"],
    })


def _task_sets_text(aggregates: pd.DataFrame) -> str:
    """Which tasks each aggregate row covers, naming each distinct task set once."""
    task_sets: dict[str, list[str]] = {}
    for row in aggregates.itertuples():
        task_sets.setdefault(row.tasks, []).append(f"{row.algo} depth {row.depth} width {row.width}")
    if len(task_sets) == 1:
        (tasks,) = task_sets
        return f"every configuration ran the same tasks: {tasks.replace(' ', ', ')}"
    return "; ".join(f"{', '.join(users)}: {tasks.replace(' ', ', ')}" for tasks, users in task_sets.items())


# ----------------------------------------------------------------------------------------------
# Entry point


def _runs_of_batch_size(results: Results, batch_size: int) -> Results:
    """``results`` restricted to the included runs of one batch size (runs, evaluations and configs; the
    runs not included are kept)."""
    runs = results.runs[results.runs["batch_size"] == batch_size].reset_index(drop=True)
    evaluations = results.evaluations[results.evaluations["batch_size"] == batch_size].reset_index(drop=True)
    configs = {run_id: results.configs[run_id] for run_id in runs["run_id"]}
    return dataclasses.replace(results, runs=runs, evaluations=evaluations, configs=configs)


def build_report(
    results_dir: str | os.PathLike, output_pdf: str | os.PathLike | None = None, *, reps: int = 2000, seed: int = 0
) -> dict[str, Path]:
    """Builds the PDF report of a results directory and writes its tables beside it.

    Args:
        results_dir: directory with scores.csv and runs/ (see `gcrl_bench.results`).
        output_pdf: where to write the PDF; default results_dir/report.pdf. The tables go beside
            it as <stem>_tables.csv, <stem>_tables.md and <stem>_tables.tex.
        reps: number of bootstrap resamples per interval.
        seed: seed of every bootstrap; the same data, reps and seed give the same numbers.

    Returns:
        {"pdf", "csv", "markdown", "latex": path written}.

    Raises:
        ResultsError: unreadable, inconsistent or incompatible results, or an unwritable output.
        ConfigError: reps or seed out of range.
    """
    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 1:
        raise ConfigError(f"reps must be a positive integer number of bootstrap resamples, got {reps!r}; try 2000")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    all_results = results = load_results(results_dir)
    batch_sizes = results.runs["batch_size"].value_counts()
    # The sections below identify a configuration by (algo, depth, width); with several batch sizes they
    # show the batch size with the most runs (the smallest on a tie), and a batch size x depth table
    # compares every batch size.
    shown_batch_size = int(min(batch_sizes[batch_sizes == batch_sizes.max()].index))
    if len(batch_sizes) > 1:
        results = _runs_of_batch_size(results, shown_batch_size)
    pdf_path = Path(output_pdf) if output_pdf is not None else results.directory / "report.pdf"
    stem = pdf_path.with_suffix("")
    paths = {
        "pdf": pdf_path,
        "csv": stem.with_name(stem.name + "_tables.csv"),
        "markdown": stem.with_name(stem.name + "_tables.md"),
        "latex": stem.with_name(stem.name + "_tables.tex"),
    }

    per_task = tables.task_table(results, reps=reps, seed=seed)
    aggregates = tables.aggregate_table(results, reps=reps, seed=seed)
    curves = learning_curves(results, reps=reps, seed=seed)
    critical_depths = scaling.depth_scaling_table(per_task, aggregates)
    improvements = scaling.improvement_table(results, reps=reps, seed=seed)
    profiles = scaling.performance_profiles(results, reps=reps, seed=seed)
    efficiency = scaling.sample_efficiency_curves(results, reps=reps, seed=seed)
    improvement_text = tables.display_improvement_table(improvements)
    critical_text = tables.display_critical_depth_table(critical_depths)
    task_text = tables.display_task_table(per_task)
    aggregate_text = tables.display_aggregate_table(aggregates)
    task_note = (
        "Time at goal: steps within the success radius out of the episode length; a run's score is the mean "
        "of its last 5 evaluations. Mean over seeds with a 95% stratified-bootstrap interval over seeds (a "
        "single seed gives a zero-width interval). Paper Table 1: Wang et al. 2025 (arXiv:2503.14858), CRL, "
        "width 256, mean ± standard error, runs of 100M-400M env steps; shown only beside runs of that budget."
    )
    aggregate_note = (
        "Normalised score = score / episode length, aggregated over the tasks each configuration ran ("
        + _task_sets_text(aggregates)
        + "). IQM = interquartile mean over all runs and tasks; mean and median of the per-task means; "
        "optimality gap = 1 - mean of min(score, 1). 95% stratified-bootstrap intervals (runs resampled within "
        "tasks)."
    )
    dropped = [f"{r.algo} depth {r.depth} width {r.width}: {r.dropped_runs}" for r in aggregates.itertuples() if r.dropped_runs]
    if dropped:
        aggregate_note += (" Unequal seed counts: each task keeps its lowest seeds up to the smallest count; "
                           "left out of the aggregates (still in the per-task table): " + "; ".join(dropped) + ".")
    critical_note = (
        "Critical depth: the smallest depth whose 95% interval lies entirely above the interval of depth 4 of the "
        "same algorithm and width (per task: mean time at goal over seeds; aggregate: IQM of normalised scores). "
        "'none': no deeper network is separated from depth 4 by its interval."
    )
    improvement_note = (
        "P(X > Y): probability that a run of X has a higher normalised score than a run of Y on a task drawn "
        "uniformly from the tasks both ran (Mann-Whitney U statistic averaged over tasks; ties count half; "
        "rliable). 0.5: no difference. 95% intervals: X's and Y's runs resampled independently within tasks. "
        "Each depth is compared with depth 4 of the same algorithm and width; each algorithm with crl at the "
        "same depth and width."
    )
    batch_sections: list[tuple[str, pd.DataFrame, str]] = []  # (title, text table, note); only with 2+ batch sizes
    batch_pages: list[Figure] = []
    if len(batch_sizes) > 1:
        batch_cells = tables.batch_depth_table(all_results, reps=reps, seed=seed)
        batch_sections.append((
            "Batch size x depth: time at goal", tables.display_batch_depth_table(batch_cells),
            "Mean time at goal over seeds per task, algorithm, width, batch size and depth, with a 95% bootstrap "
            f"interval over seeds (n: seeds). Every other table and figure shows the runs of batch size "
            f"{shown_batch_size} only (the batch size with the most runs).",
        ))
        batch_pages = _batch_depth_pages(batch_cells)
        task_note += f" Runs of batch size {shown_batch_size} only (see the batch size x depth table)."
        aggregate_note += f" Runs of batch size {shown_batch_size} only (see the batch size x depth table)."
    run_ids = list(results.runs["run_id"])
    diagnostic_pages = diagnostics.section_pages(results.runs, diagnostics.read_run_metrics(results.directory, run_ids))
    warnings_text = diagnostics.display_warnings_table(diagnostics.warnings_table(
        all_results.runs, diagnostics.read_run_summaries(all_results.directory, list(all_results.runs["run_id"]))))
    warnings_note = ("Warnings of each included run's last epoch (summary.json): representation collapse (effective "
                     "rank below 1.5), vanishing or exploding gradients (first over last block's gradient norm "
                     "outside [1e-3, 1e3]), policy entropy collapse (mean log-std within 0.5 of its floor). "
                     "'none': no run has a warning.")
    num_points = sorted({line.grid.size for lines in curves.values() for line in lines})
    points_text = f"{num_points[0]}" if len(num_points) == 1 else f"{num_points[0]}-{num_points[-1]}"

    def write_pdf(temporary: Path) -> None:
        with _print_style(), PdfPages(temporary, metadata={"Title": "gcrl-bench report", "Creator": "gcrl-bench"}) as pdf:
            pages = [
                _title_page(all_results, reps=reps, seed=seed, num_curve_points=f"{points_text} points per curve"),
                *_table_pages("Time at goal per task", task_text, task_note),
                *_table_pages("Aggregate over tasks: normalised score", aggregate_text, aggregate_note),
                *_depth_scaling_pages(per_task, aggregates),
                *_table_pages("Critical depth", critical_text, critical_note),
                *(page for title, text, note in batch_sections for page in _table_pages(title, text, note)),
                *batch_pages,
                _cost_page(results, aggregates),
                _comparison_page(improvements, profiles, efficiency),
                *_table_pages("Probability of improvement", improvement_text, improvement_note),
                *_curve_pages(curves, results),
                *diagnostic_pages,
                *_table_pages("Diagnostics: warnings", warnings_text, warnings_note),
                *_table_pages("Appendix: every included run", _per_run_table(all_results),
                              "Time at goal, success any and success at end: means of the run's last 5 evaluations "
                              "(success: fraction of evaluation episodes). Wall clock: training and evaluation, "
                              "without compilation. Parameters: all networks of the agent (from params.msgpack)."),
                *_table_pages("Runs not included", _not_included_table(results),
                              "Runs with a failure.json, without a complete summary.json (in progress or failed) or without a finite "
                              "score. They appear in no table or curve; no value is filled in for them."),
            ]
            for page in pages:
                pdf.savefig(page)

    _write_atomically(paths["pdf"], write_pdf)
    _write_atomically(paths["csv"], lambda temporary: tables.long_table(per_task, aggregates, improvements, critical_depths).to_csv(temporary, index=False))
    _write_text(paths["markdown"], "\n\n".join([
        "## Time at goal per task", tables.to_markdown(task_text), task_note,
        "## Aggregate over tasks: normalised score", tables.to_markdown(aggregate_text), aggregate_note,
        "## Critical depth", tables.to_markdown(critical_text), critical_note,
        "## Probability of improvement", tables.to_markdown(improvement_text), improvement_note,
        *(part for title, text, note in batch_sections for part in (f"## {title}", tables.to_markdown(text), note)),
        "## Diagnostics: warnings", tables.to_markdown(warnings_text) if len(warnings_text) else "none", warnings_note,
    ]) + "\n")
    _write_text(paths["latex"], "\n\n".join([
        tables.to_latex(task_text, "Time at goal per task. " + task_note),
        tables.to_latex(aggregate_text, "Aggregate over tasks: normalised score. " + aggregate_note),
        tables.to_latex(critical_text, "Critical depth. " + critical_note),
        tables.to_latex(improvement_text, "Probability of improvement. " + improvement_note),
        *(tables.to_latex(text, f"{title}. {note}") for title, text, note in batch_sections),
    ]) + "\n")
    return paths

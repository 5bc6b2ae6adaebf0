"""The report's diagnostics section: tidy tables from hand-written metrics rows, and one real smoke pair whose
report holds the diagnostics pages and whose `inspect --plot` writes a PNG."""

import json

import pandas as pd
import pytest

from gcrl_bench.reports import diagnostics as rd


def _runs(*specs):
    """specs: (run_id, depth, seed) of CRL on point_u_maze, width 16."""
    return pd.DataFrame([{"run_id": r, "algo": "crl", "task": "point_u_maze", "depth": d, "width": 16, "seed": s}
                         for r, d, s in specs])


def _row(epoch, blocks, grads, rank_phi, rank_psi, actor_grads=None):
    """blocks: [(input_norm, branch_norm)] per block of sa_encoder; grads: sa_encoder grad_norm per block."""
    row = {"epoch": epoch, "env_steps": 1000 * epoch, "eval/time_at_goal": 0.0}
    for i, ((x, h), g) in enumerate(zip(blocks, grads)):
        row[f"diag/sa_encoder/block_{i:03d}/input_norm"] = x
        row[f"diag/sa_encoder/block_{i:03d}/branch_norm"] = h
        row[f"diag/sa_encoder/block_{i:03d}/branch_ratio"] = h / x
        row[f"diag/sa_encoder/block_{i:03d}/grad_norm"] = g
    for i, g in enumerate(actor_grads or []):
        row[f"diag/actor/block_{i:03d}/grad_norm"] = g
    row["diag/sa_encoder/input/grad_norm"] = 99.0
    row["diag/sa_encoder/output/effective_rank"] = rank_phi
    row["diag/goal_encoder/output/effective_rank"] = rank_psi
    return row


RUNS = _runs(("d4s0", 4, 0), ("d4s1", 4, 1), ("d8s0", 8, 0), ("d8s1", 8, 1), ("old", 4, 2))
METRICS = {
    # depth 4: one block; depth 8: two blocks; two epochs each
    "d4s0": [_row(1, [(2.0, 1.0)], [0.1], 3.0, 2.0), _row(2, [(4.0, 1.0)], [0.2], 5.0, 4.0, actor_grads=[7.0])],
    "d4s1": [_row(1, [(2.0, 2.0)], [0.3], 1.0, 2.0), _row(2, [(4.0, 3.0)], [0.4], 7.0, 2.0, actor_grads=[9.0])],
    "d8s0": [_row(1, [(1.0, 1.0), (2.0, 1.0)], [1.0, 2.0], 2.0, 2.0),
             _row(2, [(1.0, 0.5), (2.0, 2.0)], [3.0, 4.0], 4.0, 3.0)],
    "d8s1": [_row(1, [(1.0, 3.0), (2.0, 3.0)], [5.0, 6.0], 4.0, 2.0),
             _row(2, [(1.0, 1.5), (2.0, 1.0)], [7.0, 8.0], 6.0, 5.0)],
    # a run from before diagnostics existed: evaluations only
    "old": [{"epoch": 1, "env_steps": 1000, "eval/time_at_goal": 3.0}, {"epoch": 2, "env_steps": 2000, "eval/time_at_goal": 4.0}],
}


def test_long_table_and_runs_without_diagnostics():
    long = rd.long_table(RUNS, METRICS)
    assert rd.runs_without_diagnostics(RUNS, long) == ["old"]
    assert "old" not in set(long["run_id"])
    # d8s0 epoch 2: 2 blocks x 4 statistics + input grad + 2 ranks = 11 entries
    assert len(long[(long["run_id"] == "d8s0") & (long["epoch"] == 2)]) == 11
    one = long[(long["run_id"] == "d8s0") & (long["epoch"] == 2) & (long["group"] == "block_001")
               & (long["statistic"] == "grad_norm")]
    assert one["value"].tolist() == [4.0] and one["block"].tolist() == [1.0] and one["env_steps"].tolist() == [2000]
    assert long.loc[long["group"] == "input", "block"].isna().all()


def test_branch_ratio_table_is_the_last_evaluation_mean_over_seeds():
    table = rd.branch_ratio_table(rd.long_table(RUNS, METRICS))
    got = {(r.depth, r.block): (r.branch_ratio, r.num_seeds) for r in table.itertuples()}
    # last epoch: depth 4 block 0: (1/4 + 3/4) / 2; depth 8 block 0: (0.5/1 + 1.5/1) / 2, block 1: (2/2 + 1/2) / 2
    assert got == {(4, 0): (pytest.approx(0.5), 2), (8, 0): (pytest.approx(1.0), 2), (8, 1): (pytest.approx(0.75), 2)}
    assert set(table["network"]) == {"sa_encoder"}


def test_grad_norm_table_is_the_main_network_per_block_and_epoch():
    table = rd.grad_norm_table(rd.long_table(RUNS, METRICS))
    assert set(table["network"]) == {"sa_encoder"}  # CRL's main network, not the actor
    got = {(r.depth, r.epoch, r.block): r.grad_norm for r in table.itertuples()}
    assert got == pytest.approx({(4, 1, 0): 0.2, (4, 2, 0): 0.3, (8, 1, 0): 3.0, (8, 1, 1): 4.0,
                                 (8, 2, 0): 5.0, (8, 2, 1): 6.0})
    assert rd.main_network(["actor", "critic_0", "critic_1"]) == "critic_0"
    assert rd.main_network(["actor"]) == "actor"


def test_effective_rank_table_is_phi_and_psi_per_epoch():
    table = rd.effective_rank_table(rd.long_table(RUNS, METRICS))
    got = {(r.network, r.depth, r.epoch): r.effective_rank for r in table.itertuples()}
    assert got == pytest.approx({
        ("sa_encoder", 4, 1): 2.0, ("sa_encoder", 4, 2): 6.0, ("goal_encoder", 4, 1): 2.0, ("goal_encoder", 4, 2): 3.0,
        ("sa_encoder", 8, 1): 3.0, ("sa_encoder", 8, 2): 5.0, ("goal_encoder", 8, 1): 2.0, ("goal_encoder", 8, 2): 4.0})
    assert set(table["num_seeds"]) == {2}


def test_warnings_table_one_row_per_warning():
    summaries = {"d4s0": {"warnings": ["representation collapse: x", "vanishing gradients in sa_encoder: y"]},
                 "d8s1": {"warnings": []}, "old": {}}  # "old": a summary from before warnings existed
    table = rd.warnings_table(RUNS, summaries)
    assert table[["run_id", "depth", "seed", "warning"]].values.tolist() == [
        ["d4s0", 4, 0, "representation collapse: x"], ["d4s0", 4, 0, "vanishing gradients in sa_encoder: y"]]
    shown = rd.display_warnings_table(table)
    assert list(shown.columns) == ["Run", "Depth", "Seed", "Warning"] and len(shown) == 2
    assert rd.warnings_table(RUNS, {}).empty


def test_section_pages_skip_runs_without_diagnostics():
    pages = rd.section_pages(RUNS, METRICS)
    titles = [page._suptitle.get_text() for page in pages]
    assert [t.split(":")[0] for t in titles] == ["Diagnostics"] * 3
    assert any("branch ratio" in t for t in titles) and any("gradient norm" in t for t in titles)
    # the skipped run is named in the note, and no line is drawn for it: branch-ratio panel has depths 4 and 8 only
    assert "old" in pages[0]._supxlabel.get_text()
    labels = [line.get_label() for line in pages[0].axes[0].get_lines()]
    assert labels == ["depth 4, width 16 (n=2)", "depth 8, width 16 (n=2)"]
    # only old runs: one note page, no figure drawn from zeros
    (only,) = rd.section_pages(RUNS[RUNS["run_id"] == "old"], METRICS)
    assert not only.axes and "No run recorded" in " ".join(t.get_text() for t in only.texts)


def test_run_heatmaps_blocks_by_epochs():
    figure = rd.run_heatmaps(METRICS["d8s0"], "d8s0")
    images = {ax.get_title(): ax.get_images()[0].get_array() for ax in figure.axes if ax.get_images()}
    assert sorted(images) == ["sa_encoder: branch_ratio", "sa_encoder: grad_norm"]
    grad = images["sa_encoder: grad_norm"]
    assert grad.shape == (2, 2) and grad.tolist() == [[1.0, 3.0], [2.0, 4.0]]  # rows: blocks; columns: epochs
    with pytest.raises(ValueError, match="no per-block"):
        rd.run_heatmaps(METRICS["old"], "old")


def test_smoke_pair_report_has_diagnostics_pages_and_inspect_plots(capsys, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    from gcrl_bench.cli import main

    out = tmp_path / "res"
    def cli(*argv):  # the exit code of one command (0 when main returns)
        try:
            main(list(argv))
        except SystemExit as exit_:
            return exit_.code or 0
        return 0

    code = cli("run", "--algos", "crl", "--tasks", "point_u_maze", "--depths", "4,8", "--widths", "16",
               "--preset", "smoke", "--out", str(out))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # the progress display prints one line per warning of a finished run (none printed for a run without any)
    summaries = [json.loads((p / "summary.json").read_text()) for p in (out / "runs").iterdir()]
    printed = [line.split("warning: ", 1)[1] for line in captured.err.splitlines() if ": warning: " in line]
    assert sorted(printed) == sorted(w for s in summaries for w in s["warnings"])
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(out / "report.pdf").pages)
    for title in ("Diagnostics: residual-branch ratio", "Diagnostics: gradient norm by block",
                  "Diagnostics: representation effective rank", "Diagnostics: warnings"):
        assert title in text, title
    assert "## Diagnostics: warnings" in (out / "report_tables.md").read_text()
    run_dir = next(p for p in (out / "runs").iterdir() if "_d8_" in p.name)
    png = tmp_path / "heat.png"
    capsys.readouterr()
    code = cli("inspect", str(run_dir), "--plot", str(png))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "sa_encoder" in captured.out and f"wrote {png}" in captured.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_run_outcome_carries_the_summary_warnings():
    from gcrl_bench.runner import RunOutcome

    summary = {"score": 1.5, "env_steps": 10, "wall_time_s": 2.0, "compile_time_s": 0.0,
               "warnings": ["representation collapse: a", "exploding gradients in actor: b"]}
    assert RunOutcome.complete("r", summary).warnings == ("representation collapse: a", "exploding gradients in actor: b")
    del summary["warnings"]  # a summary from before diagnostics
    assert RunOutcome.complete("r", summary).warnings == ()

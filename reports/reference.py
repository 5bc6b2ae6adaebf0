"""Published numbers that the report prints next to ours, for orientation only.

Wang et al., "1000 Layer Networks for Self-Supervised RL: Scaling Depth Can Enable New
Goal-Reaching Capabilities" (arXiv:2503.14858, camera-ready), Appendix A.2, Table 1: Contrastive
RL with network width 256 at depths 4 and 64; time at goal out of 1000 steps, the mean over the
last 5 evaluations, averaged over runs; ± one standard error. Those runs used 100M-400M env steps,
so a shorter run is not expected to reach them.

The paper's ``humanoid`` row was run at 0.03 s per env step (docs/tasks.md §9.1), gcrl-bench's ``humanoid`` steps
0.015 s: the report prints that row for ``humanoid`` with the note PAPER_NOTES gives, and without a note for
``humanoid_paper_dt``, the variant at the paper's step (PAPER_ROW maps it onto the paper's ``humanoid`` row).
"""

from __future__ import annotations

PAPER_ALGO = "crl"
PAPER_WIDTH = 256
PAPER_EPISODE_LENGTH = 1000

# (task, depth) -> (mean, standard error)
PAPER_TABLE1: dict[tuple[str, int], tuple[float, float]] = {
    ("arm_binpick_hard", 4): (38.0, 4.0),
    ("arm_binpick_hard", 64): (219.0, 15.0),
    ("arm_push_easy", 4): (308.0, 33.0),
    ("arm_push_easy", 64): (762.0, 30.0),
    ("arm_push_hard", 4): (171.0, 11.0),
    ("arm_push_hard", 64): (410.0, 13.0),
    ("ant_u4_maze", 4): (11.4, 4.1),
    ("ant_u4_maze", 64): (286.0, 36.0),
    ("ant_u5_maze", 4): (0.97, 0.7),
    ("ant_u5_maze", 64): (61.0, 18.0),
    ("ant_big_maze", 4): (61.0, 20.0),
    ("ant_big_maze", 64): (441.0, 25.0),
    ("ant_hardest_maze", 4): (215.0, 8.0),
    ("ant_hardest_maze", 64): (387.0, 21.0),
    ("humanoid", 4): (12.6, 1.3),
    ("humanoid", 64): (649.0, 19.0),
    ("humanoid_u_maze", 4): (3.2, 1.2),
    ("humanoid_u_maze", 64): (159.0, 33.0),
    ("humanoid_big_maze", 4): (0.06, 0.04),
    ("humanoid_big_maze", 64): (59.0, 21.0),
}

PAPER_ROW: dict[str, str] = {"humanoid_paper_dt": "humanoid"}
"""Tasks whose Table 1 row has another name: the variant run as the paper ran a task -> the paper's task."""

PAPER_NOTES: dict[str, str] = {"humanoid": "at 0.03 s/step"}
"""Tasks whose Table 1 number was obtained under conditions other than ours -> a short note the report prints
after the number: the paper's ``humanoid`` stepped 0.03 s, ours 0.015 s (compare with ``humanoid_paper_dt``)."""


def paper_row(task: str) -> str:
    """The name of ``task``'s row in Table 1 (and in PAPER_BUDGETS): itself, or PAPER_ROW's mapping."""
    return PAPER_ROW.get(task, task)


def paper_note(task: str) -> str:
    """The note to print after ``task``'s Table 1 number ('' when the paper's conditions are ours)."""
    return PAPER_NOTES.get(task, "")


def paper_table1(algo: str, task: str, depth: int, width: int, episode_length: int,
                 env_steps: float | None = None) -> tuple[float, float] | None:
    """The paper's (mean, standard error) for this configuration, or None when it reports none or when
    the runs' budget (``env_steps``, the smallest final env steps among them) is below 90% of the
    paper's budget for the task: a number from 100M env steps beside a short run would mislead. A task of
    PAPER_ROW gets the row (and budget) of the paper's task it maps to."""
    from gcrl_bench.config import PAPER_BUDGETS

    if algo != PAPER_ALGO or width != PAPER_WIDTH or episode_length != PAPER_EPISODE_LENGTH:
        return None
    task = paper_row(task)
    if env_steps is None or task not in PAPER_BUDGETS or env_steps < 0.9 * PAPER_BUDGETS[task]:
        return None
    return PAPER_TABLE1.get((task, depth))

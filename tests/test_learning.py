"""End to end: CRL learns the sanity task within a CPU budget (real training, real evaluation)."""

import numpy as np

from learning_helpers import learning_curve

# Measured on a 2-core CPU (width 64, depth 4, 0.2M env steps, 12,000 gradient steps, ~1.5 min):
# time at goal rises from ~0.5 (the untrained deterministic policy)
# to ~65-70 of 100 steps, and success_any from ~0.5 to ~0.8.
MIN_TIME_AT_GOAL = 55.0
MIN_GAIN = 30.0


def test_crl_learns_point_u_maze():
    before, curve, metrics = learning_curve("crl")
    after = float(np.mean(curve[-3:]))
    assert np.isfinite(metrics["critic_loss"])
    assert after >= MIN_TIME_AT_GOAL, curve
    assert after - before >= MIN_GAIN, (before, curve)

"""The weak-result warning: when the best score is low, or the top candidate is barely ahead of
the next ones, the ranking says little and the investigator is told so.

The thresholds were measured on the bundled model's validation people (PKU-Sketch split 1, the
15 identities carved out of the training people; see benchmarks/results/casework.md and
benchmarks/weak_result.py). They are the bundled model's: another model needs its own."""

from __future__ import annotations

from collections.abc import Sequence

# Every right rank 1 of the 15 validation searches scored at least 0.232; 1 of the 6 wrong ones
# scored below 0.23 (0.201).
LOW_BEST_SCORE = 0.23
# Top score minus the fifth: 8 of the 9 right rank 1s stood further ahead than 0.10 (the ninth
# 0.078), 3 of the 6 wrong ones did not.
LOW_SEPARATION = 0.10
SEPARATION_RANK = 5

SOURCE = "thresholds measured on PKU-Sketch validation people, bundled model"


def weak_result_reasons(scores: Sequence[float]) -> list[str]:
    """Plain reasons why a ranking (scores best first) is weak; empty when it is not."""
    if not scores:
        return []
    reasons = []
    best = float(scores[0])
    if best < LOW_BEST_SCORE:
        reasons.append(f"the best score {best:.3f} is below {LOW_BEST_SCORE:.2f}")
    if len(scores) >= SEPARATION_RANK:
        gap = best - float(scores[SEPARATION_RANK - 1])
        if gap < LOW_SEPARATION:
            reasons.append(
                f"the top candidates are not separated (best minus rank {SEPARATION_RANK}: {gap:.3f} "
                f"< {LOW_SEPARATION:.2f})"
            )
    return reasons


def weak_result_warning(scores: Sequence[float]) -> str:
    reasons = weak_result_reasons(scores)
    if not reasons:
        return ""
    return "Weak result: " + "; ".join(reasons) + f" ({SOURCE}). Treat the ranking with extra caution."

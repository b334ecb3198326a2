"""The background runner: a Cancel of work still waiting for a thread is answered at once, not once
the work before it is done (else its dialog says "cancelling…" for as long as that takes)."""

from __future__ import annotations

import threading

from app.workers import TaskRunner


def test_cancelling_queued_work_answers_at_once_and_it_never_runs(qtbot):
    runner = TaskRunner()
    release, ran = threading.Event(), []
    runner.submit(lambda task: release.wait(60), pool="train", name="first")
    cancelled = []
    queued = runner.submit(lambda task: ran.append(1), pool="train", on_cancel=lambda: cancelled.append(1))
    try:
        runner.cancel(queued)
        qtbot.waitUntil(lambda: cancelled == [1], timeout=5000)
        assert runner.pools["train"].activeThreadCount() == 1  # the first one still runs
    finally:
        release.set()
        runner.shutdown()
    assert ran == [] and runner.pending() == 0

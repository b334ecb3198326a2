"""File → Import video…: the people seen in video files added to the gallery, one crop per person
followed, with progress (frames sampled, people kept, time left) and cancel; a cancelled or
interrupted video resumes where it stopped when it is imported again."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTreeWidgetItem, QWidget

from app.import_dialog import GalleryJobDialog
from app.workers import Task, TaskRunner
from core.common.types import VideoProgress, VideoSummary

VIDEO_FILTER = "Videos (*.mp4 *.m4v *.mov *.avi *.mkv);;All files (*)"


def videos_text(summaries: list[VideoSummary]) -> str:
    if not summaries:
        return "Video import cancelled before it started."
    cancelled = any(s.status == "cancelled" for s in summaries)
    head = "Video import cancelled (import again to resume)" if cancelled else "Video import finished"
    added = sum(s.added for s in summaries)
    frames = sum(s.frames_sampled for s in summaries)
    seconds = sum(s.seconds for s in summaries)
    unchanged = sum(s.status == "unchanged" for s in summaries)
    text = (
        f"{head} in {seconds:.1f} s: {added} person crop(s) added from {frames} frame(s) of {len(summaries)} video(s)"
    )
    if unchanged:
        text += f", {unchanged} imported before"
    stopped = sum(s.status == "stopped" for s in summaries)
    return text + (f"; {stopped} ended early (kept what was read)." if stopped else ".")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class VideoImportDialog(GalleryJobDialog):
    """Imports ``paths`` (video files), sampling ``samples_per_second`` frames per second of each."""

    describe = staticmethod(videos_text)
    first_step = "Checking the video files…"

    def __init__(
        self, runner: TaskRunner, workspace, paths: list[str], samples_per_second: float, parent: QWidget | None = None
    ):
        self.paths = [str(p) for p in paths]

        def run_import(task: Task) -> list[VideoSummary]:
            return workspace.videos.import_videos(
                self.paths, samples_per_second, progress=task.report, cancel=task.cancel
            )

        names = ", ".join(os.path.basename(p) for p in self.paths)
        super().__init__(
            runner,
            run_import,
            "Import video",
            f"Finding the people in {names}, {samples_per_second:g} frame(s) a second: one photo of each person "
            "followed, with the frame and time it was seen.",
            parent,
        )
        self.failures.setHeaderLabels(["Video", "Why it ended early"])

    def _progress(self, progress: VideoProgress) -> None:
        name = os.path.basename(progress.path)
        if progress.stage == "checking":
            self.progress.setRange(0, 0)
            self.counts.setText(f"{name}: checking the file (sha256)…")
            return
        if progress.frames_total:
            self.progress.setRange(0, progress.frames_total)
            self.progress.setValue(progress.frames_done)
        left = "time left unknown" if progress.seconds_left is None else f"{_clock(progress.seconds_left)} left"
        self.counts.setText(
            f"{name}: {progress.frames_done} of about {progress.frames_total} frames · {progress.people} people · "
            f"{progress.rate:.1f} frames/s · {left}"
        )
        self.current.setText(self.fontMetrics().elidedText(progress.path, Qt.ElideMiddle, 520))

    def status_label(self) -> QLabel:
        return self.counts

    def _finished(self, summaries: list[VideoSummary]) -> None:
        self.summary = summaries
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.counts.setText(self.describe(summaries))
        stopped = [s for s in summaries if s.status == "stopped"]
        self.current.setText("Videos that ended early:" if stopped else "")
        for summary in stopped:
            item = QTreeWidgetItem([summary.path, summary.problem])
            item.setToolTip(0, summary.path)
            item.setToolTip(1, summary.problem)
            self.failures.addTopLevelItem(item)
        self.failures.setVisible(bool(stopped))
        self._done()
        self.finished_import.emit(summaries)

    def _cancelled_before_start(self) -> None:
        self._finished([])

"""Where a candidate cut from video was seen, shown: the frame with the person's box drawn on it,
the video's name and the time (hh:mm:ss.fff). A card carries a small copy of the frame under the
crop; the comparison view shows the frame and opens it whole ("Open at this time")."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from core.common.types import VideoSource

BOX_COLOUR = QColor(255, 60, 40)


def frame_with_box(frame_jpeg: bytes, source: VideoSource) -> QImage:
    """The stored frame with the detector's box drawn on it (an empty image if it cannot be read)."""
    image = QImage.fromData(frame_jpeg)
    if image.isNull():
        return image
    image = image.convertToFormat(QImage.Format_RGB32)
    x0, y0, x1, y1 = source.box
    painter = QPainter(image)
    pen = QPen(BOX_COLOUR)
    pen.setWidth(max(2, image.width() // 320))
    painter.setPen(pen)
    painter.drawRect(QRect(x0, y0, x1 - x0, y1 - y0))
    painter.end()
    return image


def card_image(crop: QImage, frame_jpeg: bytes, source: VideoSource, size: QSize) -> QImage:
    """A card's picture for a crop cut from video: the crop above, the frame it came from below,
    with the person's box drawn at the card's scale (so that it stays visible), in the card's size."""
    card = QImage(size, QImage.Format_RGB32)
    card.fill(QColor(245, 245, 245))
    frame = QImage.fromData(frame_jpeg)
    frame_height = round(size.width() * frame.height() / max(frame.width(), 1)) if not frame.isNull() else 0
    crop_area = QSize(size.width(), size.height() - frame_height - 2)
    scaled = crop.scaled(crop_area, Qt.KeepAspectRatio, Qt.SmoothTransformation)
    painter = QPainter(card)
    painter.drawImage((size.width() - scaled.width()) // 2, (crop_area.height() - scaled.height()) // 2, scaled)
    if frame_height:
        top = size.height() - frame_height
        painter.drawImage(QRect(0, top, size.width(), frame_height), frame)
        scale = size.width() / frame.width()
        x0, y0, x1, y1 = source.box
        pen = QPen(BOX_COLOUR)
        pen.setWidth(2)
        painter.setPen(pen)
        painter.drawRect(
            QRect(round(x0 * scale), top + round(y0 * scale), round((x1 - x0) * scale), round((y1 - y0) * scale))
        )
    painter.end()
    return card


def provenance_html(source: VideoSource) -> str:
    x0, y0, x1, y1 = source.box
    return (
        f"<b>{escape(source.video_name)}</b> at <b>{source.time_text}</b> (frame {source.frame_index})<br>"
        f"<small>box {x0},{y0}–{x1},{y1} of {source.frame_size[0]}×{source.frame_size[1]} · track {source.track_id} · "
        f"{escape(source.detector)} score {source.score:.2f} (how sure the detector is that a person is there)<br>"
        f"{escape(source.video_path)}<br>video sha256 {source.video_sha256}</small>"
    )


class VideoFrameDialog(QDialog):
    """The whole frame a crop was cut from, with the person's box, titled with the video and time."""

    def __init__(self, source: VideoSource, frame_jpeg: bytes, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"{source.video_name} at {source.time_text}")
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.image = frame_with_box(frame_jpeg, source)
        self.view = QLabel()
        self.view.setAlignment(Qt.AlignCenter)
        self.view.setAccessibleName(f"Frame {source.frame_index} of {source.video_name}")
        if self.image.isNull():
            self.view.setText("The frame stored at import cannot be read.")
        else:
            shown = (
                self.image if self.image.width() <= 1280 else self.image.scaledToWidth(1280, Qt.SmoothTransformation)
            )
            self.view.setPixmap(QPixmap.fromImage(shown))
        about = QLabel(provenance_html(source))
        about.setTextFormat(Qt.RichText)
        about.setTextInteractionFlags(Qt.TextSelectableByMouse)
        about.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(about)
        layout.addWidget(buttons)
        self.adjustSize()


class VideoProvenanceBox(QGroupBox):
    """For the comparison view: the frame a crop was cut from, with its box, where and when, and
    "Open at this time". Hidden for photos that did not come from video."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Seen in video", parent)
        self.source: VideoSource | None = None
        self.frame_jpeg = b""
        self.frame = QLabel()
        self.frame.setAlignment(Qt.AlignCenter)
        self.frame.setAccessibleName("Video frame")
        self.about = QLabel()
        self.about.setTextFormat(Qt.RichText)
        self.about.setWordWrap(True)
        self.about.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.open_button = QPushButton("Open at this time")
        self.open_button.setAutoDefault(False)
        self.open_button.setToolTip("The whole frame this photo was cut from, with the person's box")
        self.open_button.clicked.connect(self.open_frame)
        layout = QVBoxLayout(self)
        layout.addWidget(self.frame)
        layout.addWidget(self.about)
        layout.addWidget(self.open_button)
        self.dialog: VideoFrameDialog | None = None
        self.hide()

    def show_source(self, found: tuple[VideoSource, bytes] | None) -> None:
        if found is None:
            self.source, self.frame_jpeg = None, b""
            self.hide()
            return
        self.source, self.frame_jpeg = found
        image = frame_with_box(self.frame_jpeg, self.source)
        self.frame.setPixmap(QPixmap.fromImage(image.scaledToWidth(420, Qt.SmoothTransformation)))
        self.about.setText(provenance_html(self.source))
        self.show()

    def open_frame(self) -> VideoFrameDialog | None:
        if self.source is None:
            return None
        self.dialog = VideoFrameDialog(self.source, self.frame_jpeg, self.window())
        self.dialog.show()
        return self.dialog


def video_source_of(workspace, photo_id: int) -> tuple[VideoSource, bytes] | None:
    """(where it was seen, the frame) for a photo cut from video, None for any other photo (called
    off the GUI thread). A frame that cannot be read is left out, not an error of the photo."""
    if not workspace.videos.sources([photo_id]):
        return None
    try:
        return workspace.videos.frame(photo_id)
    except Exception:  # noqa: BLE001 - the crop is still shown; its frame is missing
        source = workspace.videos.sources([photo_id])[photo_id]
        return source, b""

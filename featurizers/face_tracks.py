"""Face tracks: every face of every sampled frame, linked over the recording under stable ids.

Per frame the face mesh finds at most ``MAX_FACES`` faces (a crowd cannot blow up the cost).
Faces are linked frame to frame by box overlap (IoU), or by centre distance for a fast move,
with an optimal assignment (Hungarian), so two faces side by side never swap ids. A track that
is not seen keeps its id for ``MAX_GAP_S`` seconds: a face that turns away, blinks out of the
detector or is hidden by a hand for a moment comes back under the same id. Ids count from 1 in
order of first appearance.

A recording's tracks are one :class:`FaceTracks` (one row per face per frame, plus one row for
each frame without a face), computed once per recording and cached like a plan; a span's visual
features are the rows of one track inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_FACES = 4  # faces looked for per frame
MAX_GAP_S = 2.0  # a track unseen this long ends; a face seen again later gets a new id
MIN_IOU = 0.1  # below this overlap two boxes are the same face only if their centres are close
MAX_CENTRE_SHIFT = 0.6  # centre distance (in box widths) that still links two boxes
DUPLICATE_IOU = 0.5  # two landmark sets overlapping this much in one frame are one face
NO_FACE = 0  # the track id of a row that stands for a frame without any face


@dataclass
class _Track:
    id: int
    box: np.ndarray  # last seen (x0, y0, x1, y1)
    last_frame: int


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _link_cost(track: np.ndarray, box: np.ndarray) -> float:
    """0 (same box) .. 1 (overlapping a little); inf when the boxes cannot be one face."""
    overlap = iou(track, box)
    if overlap >= MIN_IOU:
        return 1.0 - overlap
    width = max(track[2] - track[0], box[2] - box[0], 1e-9)
    shift = np.hypot(*((track[:2] + track[2:]) / 2 - (box[:2] + box[2:]) / 2)) / width
    return 1.0 + shift if shift <= MAX_CENTRE_SHIFT else np.inf


def link_tracks(boxes: Sequence[np.ndarray], max_gap: int) -> list[np.ndarray]:
    """Track ids for the faces of each frame: ``boxes[f]`` is ``[n_f, 4]`` (x0, y0, x1, y1);
    returns one int array ``[n_f]`` per frame. ``max_gap``: frames a track may go unseen."""
    tracks: list[_Track] = []
    next_id = 1
    ids: list[np.ndarray] = []
    for frame, found in enumerate(boxes):
        found = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        tracks = [t for t in tracks if frame - t.last_frame <= max_gap]
        assigned = np.zeros(len(found), dtype=np.int64)
        if tracks and len(found):
            cost = np.array([[_link_cost(t.box, b) for b in found] for t in tracks])
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            for r, c in zip(rows, cols, strict=True):
                if np.isfinite(cost[r, c]):
                    assigned[c] = tracks[r].id
                    tracks[r].box, tracks[r].last_frame = found[c], frame
        for c in np.flatnonzero(assigned == 0):
            tracks.append(_Track(next_id, found[c], frame))
            assigned[c] = next_id
            next_id += 1
        ids.append(assigned)
    return ids


@dataclass
class FaceTracks:
    """Every face of a recording's sampled frames. Row ``i`` is face ``track[i]`` in frame
    ``frame[i]`` with visual feature row ``rows[i]``; a frame without a face has one row with
    track ``NO_FACE`` (so every frame is there). ``times``: each frame's start (s), ``ends``
    its end (the next frame's start: variable frame rates keep their own times), ``period``
    the nominal frame length."""

    times: np.ndarray  # float64 [F]
    ends: np.ndarray  # float64 [F]
    period: float
    frame: np.ndarray  # int64 [M]
    track: np.ndarray  # int64 [M]
    rows: np.ndarray  # float32 [M, D]

    def ids(self, start: float = 0.0, end: float = np.inf) -> list[int]:
        """The tracks seen in frames starting in ``[start, end)``, in id order."""
        inside = self._inside(start, end)
        return sorted(int(t) for t in np.unique(self.track[inside]) if t != NO_FACE)

    def _inside(self, start: float, end: float) -> np.ndarray:
        frame_times = self.times[self.frame]
        return (frame_times >= start - 1e-6) & (frame_times < end - 1e-6)

    def frames_in(self, start: float, end: float) -> np.ndarray:
        """Indices of the frames starting in ``[start, end)``."""
        return np.flatnonzero((self.times >= start - 1e-6) & (self.times < end - 1e-6))

    def of(self, track_id: int | None, start: float, end: float) -> np.ndarray:
        """``[frames in the span, D]``: the track's rows, zeros where it is not seen (or for
        every frame when ``track_id`` is None)."""
        frames = self.frames_in(start, end)
        out = np.zeros((len(frames), self.rows.shape[1]), dtype=np.float32)
        if track_id is None or not len(frames):
            return out
        mine = self._inside(start, end) & (self.track == track_id)
        out[self.frame[mine] - frames[0]] = self.rows[mine]
        return out

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``([M, 2 + D] features: frame, track, row), [M, 2] intervals)`` for the store."""
        features = np.column_stack([self.frame, self.track, self.rows]).astype(np.float32)
        return features, np.column_stack([self.times[self.frame], self.ends[self.frame]])

    @classmethod
    def from_arrays(cls, features: np.ndarray, intervals: np.ndarray) -> FaceTracks:
        frame = features[:, 0].astype(np.int64)
        n_frames = int(frame.max()) + 1 if len(frame) else 0
        times, ends = np.zeros(n_frames), np.zeros(n_frames)
        times[frame], ends[frame] = intervals[:, 0], intervals[:, 1]
        period = float(np.median(ends - times)) if n_frames else 0.0
        return cls(times, ends, period, frame, features[:, 1].astype(np.int64), features[:, 2:])

"""Head pose, gaze and action-unit-like measures from MediaPipe's 478 face-mesh landmarks.

Sides are the subject's own: "left eye" is the subject's left eye, which appears on the image
right in an unmirrored frontal view. Distances are measured in a face-aligned frame (the image
rotated so the line between the eye centres is horizontal, y pointing down) and divided by the
inter-ocular distance (IOD, eye centre to eye centre), so they do not depend on image size, head
distance or in-plane head roll. They are geometric proxies of FACS action units, not calibrated
AU intensities; out-of-plane head turns change them too.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

# MediaPipe face-mesh landmark indices (subject's sides).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
RIGHT_EYE_LIDS = ((159, 145), (158, 153), (160, 144))  # (upper, lower) pairs
LEFT_EYE_LIDS = ((386, 374), (385, 380), (387, 373))
RIGHT_IRIS, LEFT_IRIS = 468, 473  # iris centres (refine_landmarks=True)
RIGHT_BROW = (70, 63, 105, 66, 107)  # upper brow contour, outer to inner
LEFT_BROW = (300, 293, 334, 296, 336)
RIGHT_BROW_INNER, LEFT_BROW_INNER = 55, 285
NOSE_TIP, SUBNASALE = 1, 2
RIGHT_ALA, LEFT_ALA = 129, 358  # nostril wings
UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 0, 17
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER = 61, 291
RIGHT_CHEEK, LEFT_CHEEK = 117, 346  # cheek below the lower eyelid
CHIN = 152

# Generic head model (x right, y down, z away from the camera, nose tip at the origin; arbitrary
# units of about 0.2 mm) for six landmarks. Proportions are the widely used anthropometric
# six-point model; a real head differs, which mostly shows as a constant pitch offset.
POSE_LANDMARKS = (
    NOSE_TIP,
    CHIN,
    RIGHT_EYE_OUTER,
    LEFT_EYE_OUTER,
    RIGHT_MOUTH_CORNER,
    LEFT_MOUTH_CORNER,
)
POSE_MODEL = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 330.0, 65.0],
        [-225.0, -170.0, 135.0],
        [225.0, -170.0, 135.0],
        [-150.0, 150.0, 125.0],
        [150.0, 150.0, 125.0],
    ]
)
POSE_MODEL_EYE_SPAN = 450.0  # model distance between the outer eye corners

POSE_NAMES = ("pose_pitch", "pose_yaw", "pose_roll", "pose_x", "pose_y", "pose_scale")
GAZE_NAMES = ("gaze_left_x", "gaze_left_y", "gaze_right_x", "gaze_right_y")
AU_NAMES = (
    "brow_raise_left",
    "brow_raise_right",
    "brow_inner_raise",
    "brow_furrow",
    "eye_open_left",
    "eye_open_right",
    "lid_tighten",
    "cheek_raise",
    "nose_wrinkle",
    "upper_lip_raise",
    "lip_corner_raise",
    "mouth_width",
    "lip_part",
    "jaw_drop",
    "lip_thickness",
    "pucker",
    "chin_raise",
    "brow_asymmetry",
    "mouth_asymmetry",
)
BOX_NAMES = ("face_x", "face_y", "face_w", "face_h")


def head_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pitch, yaw, roll (degrees) and normalised position/size of the head.

    ``points``: landmark pixel coordinates [478, 2]. Angles follow OpenFace's camera-axis
    convention (x right, y down, z forward): pitch > 0 head tilted down, yaw > 0 head turned to
    the image left (the subject's right), roll > 0 head rotated clockwise in the image. The
    camera is assumed to have focal length = frame width and its centre at the frame centre.
    ``pose_x``/``pose_y``: nose-tip direction (x/z, y/z); ``pose_scale``: apparent outer eye
    span over focal length (grows as the head comes closer).
    """
    focal = float(width)
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    image_points = points[list(POSE_LANDMARKS)].astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(POSE_MODEL, image_points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:
        return np.zeros(len(POSE_NAMES))
    pitch, yaw, roll = Rotation.from_rotvec(rvec.ravel()).as_euler("XYZ", degrees=True)
    tx, ty, tz = tvec.ravel()
    return np.array([pitch, yaw, roll, tx / tz, ty / tz, POSE_MODEL_EYE_SPAN / tz])


def _align(points: np.ndarray) -> np.ndarray:
    """Rotate/translate/scale the landmarks so the eye centres sit at (-0.5, 0) and (0.5, 0)."""
    right_eye = points[[RIGHT_EYE_OUTER, RIGHT_EYE_INNER]].mean(axis=0)
    left_eye = points[[LEFT_EYE_OUTER, LEFT_EYE_INNER]].mean(axis=0)
    axis = left_eye - right_eye  # points to the image right in a frontal view
    iod = float(np.hypot(*axis))
    cos, sin = axis / iod
    rotation = np.array([[cos, sin], [-sin, cos]])  # undo the in-plane tilt
    return (points - (left_eye + right_eye) / 2) @ rotation.T / iod


class _AlignedFace:
    """Landmarks in the face-aligned frame, as plain floats (these small sums run per frame, and
    numpy's per-call overhead would dominate them)."""

    def __init__(self, points: np.ndarray) -> None:
        aligned = _align(points)
        self.x: list[float] = aligned[:, 0].tolist()
        self.y: list[float] = aligned[:, 1].tolist()

    def height(self, *indices: int) -> float:
        """Mean height (upwards) of the given landmarks."""
        return -sum(self.y[i] for i in indices) / len(indices)

    def above(self, a: tuple[int, ...], b: tuple[int, ...]) -> float:
        """How far the mean of landmarks ``a`` lies above the mean of landmarks ``b``."""
        return self.height(*a) - self.height(*b)

    def dist(self, a: int, b: int) -> float:
        return math.hypot(self.x[a] - self.x[b], self.y[a] - self.y[b])

    def eye_opening(self, lids: tuple[tuple[int, int], ...], outer: int, inner: int) -> float:
        """Mean lid gap over eye width (the eye aspect ratio)."""
        gap = sum(self.y[lower] - self.y[upper] for upper, lower in lids) / len(lids)
        return gap / self.dist(outer, inner)

    def gaze(
        self, iris: int, outer: int, inner: int, lids: tuple[tuple[int, int], ...]
    ) -> tuple[float, float]:
        """Iris centre offset from the eye centre, as a fraction of the eye width.

        x > 0: iris towards the image right; y > 0: iris lower than the eye centre.
        """
        width = self.dist(outer, inner)
        centre_x = (self.x[outer] + self.x[inner]) / 2
        centre_y = sum(self.y[u] + self.y[v] for u, v in lids) / (2 * len(lids))
        return (self.x[iris] - centre_x) / width, (self.y[iris] - centre_y) / width


def action_units(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaze offsets [4] (``GAZE_NAMES``) and action-unit-like measures [19] (``AU_NAMES``).

    ``points``: landmark pixel coordinates [478, 2]. Each measure grows with the action its name
    says (distances that shrink with the action are negated); docs/features.md lists them.
    """
    f = _AlignedFace(points)
    right_eye, left_eye = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER), (LEFT_EYE_OUTER, LEFT_EYE_INNER)
    right_lower_lid, left_lower_lid = (RIGHT_EYE_LIDS[0][1],), (LEFT_EYE_LIDS[0][1],)
    lip_centre = (UPPER_LIP_INNER, LOWER_LIP_INNER)
    brow_left, brow_right = f.above(LEFT_BROW, left_eye), f.above(RIGHT_BROW, right_eye)
    corner_left = f.above((LEFT_MOUTH_CORNER,), lip_centre)
    corner_right = f.above((RIGHT_MOUTH_CORNER,), lip_centre)
    mouth_width = f.dist(RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER)
    lip_part = f.dist(UPPER_LIP_INNER, LOWER_LIP_INNER)
    lip_thickness = f.dist(UPPER_LIP_TOP, LOWER_LIP_BOTTOM) - lip_part
    brow_inner_raise = (
        f.above((LEFT_BROW_INNER,), (LEFT_EYE_INNER,))
        + f.above((RIGHT_BROW_INNER,), (RIGHT_EYE_INNER,))
    ) / 2
    aus = [
        brow_left,
        brow_right,
        brow_inner_raise,
        -f.dist(RIGHT_BROW_INNER, LEFT_BROW_INNER),
        f.eye_opening(LEFT_EYE_LIDS, LEFT_EYE_OUTER, LEFT_EYE_INNER),
        f.eye_opening(RIGHT_EYE_LIDS, RIGHT_EYE_OUTER, RIGHT_EYE_INNER),
        (f.above(left_lower_lid, left_eye) + f.above(right_lower_lid, right_eye)) / 2,
        (f.above((LEFT_CHEEK,), left_lower_lid) + f.above((RIGHT_CHEEK,), right_lower_lid)) / 2,
        -(f.dist(LEFT_ALA, LEFT_EYE_INNER) + f.dist(RIGHT_ALA, RIGHT_EYE_INNER)) / 2,
        -f.dist(UPPER_LIP_TOP, SUBNASALE),
        (corner_left + corner_right) / 2,
        mouth_width,
        lip_part,
        f.dist(NOSE_TIP, CHIN),
        lip_thickness,
        lip_thickness / mouth_width,
        -f.dist(LOWER_LIP_BOTTOM, CHIN),
        brow_left - brow_right,
        corner_left - corner_right,
    ]
    gaze = [
        *f.gaze(LEFT_IRIS, LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_LIDS),
        *f.gaze(RIGHT_IRIS, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_LIDS),
    ]
    return np.array(gaze), np.array(aus)


def face_box(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmark bounding box: normalised (centre x, centre y, width, height) and pixel corners."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, size = (lo + hi) / 2, hi - lo
    normalised = np.array(
        [centre[0] / width, centre[1] / height, size[0] / width, size[1] / height]
    )
    return normalised, np.concatenate([lo, hi])

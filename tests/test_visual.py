"""Visual featurizer: real behaviour on the committed fixture and on clips made here."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from skimage.data import astronaut

from featurizers import face_geometry
from featurizers.fer import (
    EMOTIONS,
    KERAS_BN_EPSILON,
    find_emotion_weights,
    layer_arrays,
    load_mini_xception,
)
from featurizers.media import MediaClip
from featurizers.visual import DIM_NAMES, VisualFeaturizer

FIXTURES = Path(__file__).parent / "fixtures"


def column(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, DIM_NAMES.index(name)]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Encode RGB frames as an H.264 mp4 with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def talking_head() -> tuple[np.ndarray, np.ndarray, dict]:
    """Features at the default 15 frames/s of the fixture clip, and its per-frame ground truth."""
    clip = MediaClip(FIXTURES / "talking_head.mp4")
    sequence = VisualFeaturizer().extract(clip)
    truth = json.loads((FIXTURES / "talking_head.truth.json").read_text())
    return sequence.features, sequence.intervals, truth


def truth_at(truth: dict, times: np.ndarray, key: str) -> np.ndarray:
    """The ground-truth value of the fixture frame nearest each feature row's start time."""
    frame_times = np.array([frame["t"] for frame in truth["frames"]])
    nearest = np.abs(frame_times[None, :] - times[:, None]).argmin(axis=1)
    return np.array([truth["frames"][i][key] for i in nearest])


def test_face_found_in_nearly_every_frame(talking_head):
    features, intervals, truth = talking_head
    assert len(features) == (truth["n_frames"] + 1) // 2  # every other frame of a 30 fps clip
    assert column(features, "face_present").mean() >= 0.95
    assert column(features, "face_confidence").min() > 0.5


def test_head_roll_tracks_known_roll(talking_head):
    features, intervals, truth = talking_head
    known = truth_at(truth, intervals[:, 0], "roll_deg")
    # The fixture's roll is counter-clockwise-positive; ours is clockwise-positive (OpenFace).
    assert np.corrcoef(column(features, "pose_roll"), -known)[0, 1] >= 0.9


def test_mouth_opening_tracks_known_jaw(talking_head):
    features, intervals, truth = talking_head
    jaw = truth_at(truth, intervals[:, 0], "jaw_px")
    assert np.corrcoef(column(features, "lip_part"), jaw)[0, 1] >= 0.8


def test_smiling_astronaut_reads_as_happy(talking_head):
    features, _, _ = talking_head
    expressions = features[:, [DIM_NAMES.index(f"expr_{e}") for e in EMOTIONS]]
    np.testing.assert_allclose(expressions.sum(axis=1), 1.0, atol=1e-4)
    assert np.median(column(features, "expr_happy")) > 0.9


def test_dims_names_and_intervals_agree():
    featurizer = VisualFeaturizer(fps=10)
    clip = MediaClip(FIXTURES / "talking_head.mp4")
    sequence = featurizer.extract(clip)
    spec = featurizer.spec
    assert spec.modality == "visual" and spec.rate == 10.0
    assert len(set(spec.dim_names)) == spec.dim == sequence.features.shape[1]
    assert abs(len(sequence.features) - clip.info.duration * 10) <= 1
    starts, ends = sequence.intervals.T
    assert np.all(np.diff(starts) > 0) and starts[0] == 0.0
    np.testing.assert_allclose(ends - starts, 0.1)
    assert np.isfinite(sequence.features).all()
    assert spec.key() != VisualFeaturizer(fps=30).spec.key()


def test_face_confidence_refreshed_every_kth_frame_matches_every_frame(talking_head):
    features, _, _ = talking_head  # the default: the detector every 5th frame of a tracked face
    every_frame = VisualFeaturizer(confidence_every=1).extract(
        MediaClip(FIXTURES / "talking_head.mp4")
    )
    confidence = DIM_NAMES.index("face_confidence")
    others = [i for i in range(len(DIM_NAMES)) if i != confidence]
    np.testing.assert_allclose(features[:, others], every_frame.features[:, others], atol=1e-5)
    held, fresh = features[:, confidence], every_frame.features[:, confidence]
    # refreshed rows carry the same score; the held ones stay close to the per-frame score
    np.testing.assert_allclose(held[::5], fresh[::5], atol=1e-6)
    assert len(np.unique(held)) < len(np.unique(fresh))
    assert np.abs(held - fresh).max() < 0.1
    assert VisualFeaturizer(confidence_every=1).spec.key() != VisualFeaturizer().spec.key()


@pytest.mark.parametrize("angles", [(12.0, 0.0, 0.0), (0.0, -20.0, 0.0), (5.0, 15.0, -8.0)])
def test_head_pose_recovers_a_rotated_head_model(angles):
    """Project the generic head model, turned by known angles, through the assumed camera."""
    width, height = 640, 360
    rotation = Rotation.from_euler("XYZ", angles, degrees=True).as_matrix()
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]])
    in_camera = face_geometry.POSE_MODEL @ rotation.T + [30.0, -20.0, 3000.0]
    projected = in_camera @ camera.T
    points = np.zeros((478, 2))
    points[list(face_geometry.POSE_LANDMARKS)] = projected[:, :2] / projected[:, 2:]
    pose = face_geometry.head_pose(points, width, height)
    np.testing.assert_allclose(pose[:3], angles, atol=0.5)
    np.testing.assert_allclose(pose[3:5], [30 / 3000, -20 / 3000], atol=1e-3)
    assert pose[5] == pytest.approx(face_geometry.POSE_MODEL_EYE_SPAN / 3000, rel=0.01)


def test_nobody_in_view_gives_zero_rows_with_face_flag_off(tmp_path):
    blank = [np.full((120, 160, 3), 90, np.uint8) for _ in range(8)]
    clip = MediaClip(write_video(tmp_path / "empty room.mp4", blank))
    sequence = VisualFeaturizer(fps=10).extract(clip)
    assert sequence.features.shape == (8, len(DIM_NAMES))
    assert np.isfinite(sequence.features).all()
    assert not sequence.features.any()
    np.testing.assert_allclose(sequence.intervals[:, 0], np.arange(8) / 10, atol=1e-6)


def test_one_4k_frame(tmp_path):
    face = cv2.resize(astronaut(), (2160, 2160), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((2160, 3840, 3), np.uint8)
    frame[:, 840:3000] = face
    clip = MediaClip(write_video(tmp_path / "uhd.mp4", [frame]))
    features = VisualFeaturizer(fps=10).extract(clip).features
    assert features.shape == (1, len(DIM_NAMES))
    assert column(features, "face_present").all()
    # The astronaut's face spans x ~ 179-271 of her 512-px portrait, placed at 840 of 3840.
    expected_centre = (840 + 225 / 512 * 2160) / 3840
    assert abs(column(features, "face_x")[0] - expected_centre) < 0.03
    assert column(features, "expr_happy")[0] > 0.9


def test_first_conv_matches_numpy_recomputation_from_the_keras_file():
    with h5py.File(find_emotion_weights(), "r") as f:
        conv = layer_arrays(f["model_weights/conv2d_1"])["kernel:0"]  # (3, 3, 1, 8)
        bn = layer_arrays(f["model_weights/batch_normalization_1"])
    x = np.random.default_rng(0).uniform(-1, 1, (64, 64)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3))  # (62, 62, 3, 3)
    scale = bn["gamma:0"] / np.sqrt(bn["moving_variance:0"] + KERAS_BN_EPSILON)

    def conv_bn(kernel: np.ndarray) -> np.ndarray:
        out = np.einsum("ijab,abo->oij", windows, kernel[:, :, 0, :])
        return (out - bn["moving_mean:0"][:, None, None]) * scale[:, None, None] + bn["beta:0"][
            :, None, None
        ]

    with torch.inference_mode():
        got = load_mini_xception().conv1(torch.from_numpy(x)[None, None])[0].numpy()
    np.testing.assert_allclose(got, conv_bn(conv), atol=1e-4)
    # Reading the kernel's height and width swapped would give clearly different outputs.
    assert np.abs(got - conv_bn(conv.transpose(1, 0, 2, 3))).max() > 1e-2

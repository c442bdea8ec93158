"""Every container and codec people send goes through predict; phone rotation, mirroring,
variable frame rate and an interrupted recording come out right and say what was done.

The files are built here from the committed talking head by tests/fixtures/make_media_survey.py
(PyAV alone), a face saying "hello my name is alice..." in English.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fixtures.make_media_survey import FPS, build_survey, scaled, vfr_frames
from test_predict import default_feature_spec, save_untrained_model

from cli import main
from featurizers.media import MediaClip
from featurizers.visual import DIM_NAMES, VisualFeaturizer
from pipeline.extract import run_extract
from pipeline.store import DONE, FeatureStore

ROLL = DIM_NAMES.index("pose_roll")
YAW = DIM_NAMES.index("pose_yaw")
AUDIO_ONLY = {"speech.mp3", "speech.m4a", "speech.wav", "speech.flac", "speech_48k_stereo.wav"}


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("survey")
    made = build_survey(folder)
    made["h264_1080p.mp4"] = scaled(made["h264_aac.mp4"], folder / "h264_1080p.mp4", 1080, 1.0)
    return made


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


def test_predict_reads_every_container_and_codec(
    survey: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    folder = survey["h264_aac.mp4"].parent
    args = ["predict", str(folder), "--model", str(model_dir), "--cache", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answers = {Path(r["source"]).name: r for r in json.loads(result.output)}
    assert set(answers) == set(survey)
    for name, answer in answers.items():
        assert answer["error"] is None, name
        assert len(answer["labels"]) == 3, name
        assert answer["language"] == "en", name
        assert "text" in answer["present"] and "audio" in answer["present"], name
        if name in AUDIO_ONLY:
            assert answer["missing"] == {"visual": "no video frames"}, name
            assert answer["orientation"] is None
        else:
            assert "visual" in answer["present"], name
    assert answers["phone_rot90.mp4"]["orientation"] == "turned 90°"
    assert answers["selfie_mirrored.mp4"]["orientation"] == "mirrored"
    assert answers["h264_aac.mp4"]["orientation"] == "upright"
    assert answers["cut.mkv"]["readable"].startswith("readable to 1.2")
    assert answers["cut.mkv"]["readable"].endswith("(truncated)")
    assert answers["cut.mkv"]["duration"] == pytest.approx(1.25, abs=0.1)
    assert all(a["readable"] is None for n, a in answers.items() if n != "cut.mkv")


def test_rotated_and_mirrored_faces_are_analysed_upright(survey: dict[str, Path]) -> None:
    """The same face stored turned (phone) or mirrored (selfie camera) gives the upright head
    pose, within the noise of encoding the picture again (bench/media.py: 0.3 degrees of roll,
    1.3 of yaw on average between H.264 and HEVC copies). Sideways, roll would be near 90."""
    featurizer = VisualFeaturizer()
    upright = featurizer.extract(MediaClip(survey["h264_aac.mp4"])).features
    phone = featurizer.extract(MediaClip(survey["phone_rot90.mp4"])).features
    selfie = featurizer.extract(MediaClip(survey["selfie_mirrored.mp4"])).features
    for features in (upright, phone, selfie):
        assert features[:, 0].all()  # a face in every frame
    for turned in (phone, selfie):
        assert np.abs(turned[:, ROLL] - upright[:, ROLL]).max() < 2.0
        assert np.abs(turned[:, YAW] - upright[:, YAW]).mean() < 3.0


def test_variable_frame_rate_keeps_the_stream_times(survey: dict[str, Path]) -> None:
    """Frames come at their stored times (30, then 10, then 24 frames/s); each shows the
    picture of that moment (so it stays in step with the sound) and lasts until the next."""
    source = [rgb for _, rgb in MediaClip(survey["h264_aac.mp4"]).frames()]
    _, written = vfr_frames(source)
    shown = list(MediaClip(survey["vfr.mp4"]).frames())
    np.testing.assert_allclose([t for t, _ in shown], written, atol=1e-3)
    rates = 1 / np.diff(written)  # times are whole milliseconds: 1/30 s is stored as 33 or 34
    nearest = np.array([min((30, 10, 24), key=lambda r: abs(rate - r)) for rate in rates])
    assert set(nearest) == {30, 10, 24} and np.abs(rates - nearest).max() < 1.0
    for t, rgb in shown:
        same_moment = source[min(round(t * FPS), len(source) - 1)]
        assert np.abs(rgb.astype(int) - same_moment).mean() < 6
    sound = MediaClip(survey["vfr.mp4"]).audio()
    np.testing.assert_allclose(sound, MediaClip(survey["h264_aac.mp4"]).audio(), atol=0.02)
    rows = VisualFeaturizer().extract(MediaClip(survey["vfr.mp4"])).intervals
    np.testing.assert_allclose(rows[1:, 0], rows[:-1, 1])  # no gaps, no overlaps
    slow = (rows[:, 0] > 0.9) & (rows[:, 0] < 1.6)  # the 10 frames/s third
    np.testing.assert_allclose(np.diff(rows[slow], axis=1), 0.1, atol=1e-3)


def test_extract_records_where_a_cut_file_stops(survey: dict[str, Path], tmp_path: Path) -> None:
    """An interrupted recording is extracted as far as it can be read, and its manifest entry
    and cached features say so (a later, complete copy has other bytes: another cache key)."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(survey["cut.mkv"], folder / "cut.mkv")
    summary = run_extract([folder], tmp_path / "out", preset="fast", modalities="audio")
    assert summary.extracted == 1
    store = FeatureStore(tmp_path / "out")
    result = store.manifest()["cut.mkv"].results["audio"]
    assert result["status"] == DONE
    assert result["readable"].startswith("readable to 1.2") and "(truncated)" in result["readable"]
    sidecar = json.loads(next((tmp_path / "out" / "entries").rglob("*.json")).read_text())
    assert sidecar["readable"] == result["readable"]
    rows = store.load("cut.mkv", "audio")
    assert 1.0 < rows.intervals[-1, 1] <= 1.25  # the sound stops a little before the picture

"""`carat-cli predict` on real two-speaker speech: every output names each segment's speaker,
and asking for more speakers than there are voices gives the voices found and a note.

The recording is tests/fixtures/two_speakers.ogg (two real voices taking turns) with a timed
transcript beside it, so no speech recognition runs; the speakers come from diarization.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pympi.Elan import Eaf
from test_predict import default_feature_spec, save_untrained_model
from test_speakers import TWO, one_voice, true_turns

from cli import main

SAID = {
    "A": [
        "and mister john dashwood had then leisure to consider how much there might be "
        "prudently in his power to do for them",
        "unless to be rather cold hearted and rather selfish is to be ill disposed",
        "had he married a more amiable woman he might have been made still more respectable "
        "than he was",
    ],
    "B": ["you always want to see it in the superlative degree"] * 2,
}


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-speaker recording with an SRT transcript: one cue per true turn."""
    folder = tmp_path_factory.mktemp("interview")
    path = folder / "interview.ogg"
    shutil.copy(TWO, path)
    said = {speaker: iter(lines) for speaker, lines in SAID.items()}
    cues = [
        f"{i}\n{_srt_time(t.start)} --> {_srt_time(t.end)}\n{next(said[t.speaker])}\n"
        for i, t in enumerate(true_turns(), start=1)
    ]
    path.with_suffix(".srt").write_text("\n".join(cues))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_model(tmp_path_factory.mktemp("model"), default_feature_spec())


def test_every_output_names_the_speaker(recording: Path, model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = ["predict", str(recording), "--model", str(model_dir), "--cache", str(cache)]
    files = {kind: tmp_path / f"out.{kind}" for kind in ("srt", "vtt", "eaf")}
    flags = [x for kind, path in files.items() for x in (f"--{kind}", str(path))]
    result = CliRunner().invoke(main, [*base, "--json", *flags])
    assert result.exit_code == 0, result.stderr
    [clip] = json.loads(result.stdout)
    speakers = [s["speaker"] for s in clip["segments"]]
    assert speakers == ["S1", "S2", "S1", "S2", "S1"]
    # the words of each segment are those said in it (speaker B's turns are the same sentence)
    assert [" ".join(s["words"]) for s in clip["segments"]][1] == SAID["B"][0]
    assert clip["segments"][0]["missing"]["visual"]  # a sound file: no face, and says so

    srt = files["srt"].read_text()
    assert [line.split(":")[0] for line in srt.splitlines() if line[:2] in ("S1", "S2")] == [
        "S1",
        "S2",
        "S1",
        "S2",
        "S1",
    ]
    assert "\nS2: " in files["vtt"].read_text()
    eaf = Eaf(str(files["eaf"]))
    assert {"S1 words", "S2 words"} <= set(eaf.get_tier_names())
    assert len(eaf.get_annotation_data_for_tier("S2 words")) == 2

    table = CliRunner().invoke(main, [*base, "--csv"])
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    by_segment = {r["segment"]: r["speaker"] for r in rows}
    assert by_segment == {"0": "S1", "1": "S2", "2": "S1", "3": "S2", "4": "S1"}


def test_more_speakers_asked_than_voices_heard_gives_a_note(
    model_dir: Path, tmp_path: Path
) -> None:
    path = one_voice(tmp_path)
    path.with_suffix(".txt").write_text(" ".join(SAID["A"]))
    args = ["predict", str(path), "--model", str(model_dir), "--cache", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, "--speakers", "3", "--json"])
    assert result.exit_code == 0, result.stderr
    [clip] = json.loads(result.stdout)
    assert {s["speaker"] for s in clip["segments"]} == {"S1"}
    assert clip["notes"] == [
        "--speakers 3: 1 distinct voice heard; the result has the speakers found"
    ]
    [note] = result.stderr.strip().splitlines()
    assert note.startswith(f"note: {path}: --speakers 3: 1 distinct voice heard")


def test_a_bad_speakers_value_is_one_line(model_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["predict", str(TWO), "--model", str(model_dir), "--speakers", "two"]
    )
    assert result.exit_code != 0
    [line] = result.stderr.strip().splitlines()
    assert "--speakers two" in line and "auto, none, or a number of speakers" in line

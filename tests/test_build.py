"""Building a packed dataset from a real feature store and a labels CSV."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from carat.data import load_dataset
from featurizers.base import FeatureSequence, FeaturizerSpec
from pipeline.align import pool_to_words
from pipeline.build import BuildOptions, build_dataset, parse_max_len
from pipeline.errors import PipelineError
from pipeline.labels import assign_splits, read_labels
from pipeline.recipe import WHOLE_CLIPS, FeatureRecipe
from pipeline.store import DONE, ClipRecord, FeatureStore

TEXT = FeaturizerSpec("test-words", "1", "text", ("w0", "w1", "w2", "w3"), None)
VISUAL = FeaturizerSpec("test-face", "1", "visual", ("face_present", "smile", "brow"), 10.0)
AUDIO = FeaturizerSpec("test-voice", "1", "audio", ("f0", "energy"), 100.0)
SPECS = {"text": TEXT, "visual": VISUAL, "audio": AUDIO}


def _clip_sequences(rng: np.random.Generator, seconds: float) -> dict[str, FeatureSequence]:
    """Words with one zero-length word; a face in the first half only."""
    edges = np.linspace(0.1, seconds - 0.1, 7)
    words = np.stack([edges[:-1], edges[1:]], axis=1)
    words[2, 1] = words[2, 0]
    text = FeatureSequence(rng.normal(size=(6, 4)), words, TEXT, [f"w{i}" for i in range(6)])
    ticks = np.arange(int(seconds * 10)) / 10
    face = (ticks < seconds / 2).astype(np.float32)
    visual_rows = np.column_stack([face, rng.normal(size=(len(ticks), 2)) * face[:, None]])
    visual = FeatureSequence(visual_rows, np.stack([ticks, ticks + 0.1], 1), VISUAL)
    frames = np.arange(int(seconds * 100)) / 100
    audio = FeatureSequence(
        rng.normal(size=(len(frames), 2)), np.stack([frames, frames + 0.01], 1), AUDIO
    )
    return {"text": text, "visual": visual, "audio": audio}


def make_store(root, clip_ids, skip=None, seed=0):
    """A feature store written through FeatureStore, as extract writes it."""
    store = FeatureStore(root)
    store.claim_specs({m: s.to_dict() for m, s in SPECS.items()})
    rng = np.random.default_rng(seed)
    clips = {}
    with store.open_manifest() as manifest:
        for n, clip_id in enumerate(clip_ids):
            sequences = _clip_sequences(rng, 2.0 + n % 3)
            content_hash = f"{n:064x}"
            results = {
                m: {"status": DONE, "entry": store.write(content_hash, s, {"clip_id": clip_id})}
                for m, s in sequences.items()
                if (clip_id, m) != skip
            }
            manifest.append(ClipRecord(clip_id, content_hash, f"/v/{clip_id}", DONE, None, results))
            clips[clip_id] = sequences
    return clips


def write_csv(path, text):
    path.write_text(text)
    return path


def test_aligned_build_reads_back_with_shapes_masks_labels_and_spec(tmp_path):
    ids = [f"clip{i}.mp4" for i in range(6)]
    clips = make_store(tmp_path / "features", ids)
    labels = write_csv(
        tmp_path / "labels.csv",
        "clip_id,happy,sad,split\n"
        "clip0.mp4,1,0,train\nclip1.mp4,0.5,0,train\nclip2.mp4,0,2.5,valid\n"
        "clip3.mp4,0,0,test\nclip4.mp4,1,1,train\nclip5.mp4,0,1,test\n",
    )
    summary = build_dataset(
        tmp_path / "features",
        labels,
        tmp_path / "dataset",
        BuildOptions(max_len={"text": 8, "visual": 8, "audio": 8}),
    )
    assert summary.joined == 6 and summary.split_sizes == {"train": 3, "valid": 1, "test": 2}
    assert not summary.labels_without_features and not summary.features_without_labels

    data = load_dataset(str(summary.out))
    assert data.label_names == ["happy", "sad"] and data.aligned
    assert data.dims == {"text": 4, "visual": 3, "audio": 2}
    assert data.lengths == {"text": 8, "visual": 8, "audio": 8}
    train = data.splits["train"]
    assert train.ids == ["clip0.mp4", "clip1.mp4", "clip4.mp4"]
    np.testing.assert_array_equal(train.labels, [[1, 0], [1, 0], [1, 1]])
    np.testing.assert_array_equal(data.splits["valid"].labels, [[0, 1]])
    np.testing.assert_array_equal(train.masks["text"][0], [1, 1, 1, 1, 1, 1, 0, 0])
    # Word 2 has zero length; the face is gone in the second half of the clip.
    np.testing.assert_array_equal(train.masks["audio"][0], [1, 1, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(train.masks["visual"][0], [1, 1, 0, 0, 0, 0, 0, 0])
    clip = clips["clip4.mp4"]
    expected, _ = pool_to_words(
        clip["audio"].features, clip["audio"].intervals, clip["text"].intervals
    )
    np.testing.assert_allclose(train.features["audio"][2, :6], expected, rtol=1e-6)
    np.testing.assert_allclose(train.features["text"][2, :6], clip["text"].features)
    assert data.feature_spec["audio"] == AUDIO.to_dict()
    assert data.feature_spec["visual"] == VISUAL.to_dict()
    assert data.feature_spec["alignment"]["mode"] == "aligned"
    assert data.feature_spec["alignment"]["max_len"] == {"text": 8, "visual": 8, "audio": 8}


def test_unaligned_build_caps_each_modality(tmp_path):
    make_store(tmp_path / "features", ["a.mp4", "b.mp4", "c.mp4"])
    labels = write_csv(tmp_path / "labels.csv", "id,joy\na,1\nb,0\nc,1\n")
    summary = build_dataset(
        tmp_path / "features",
        labels,
        tmp_path / "dataset",
        BuildOptions(
            mode="unaligned", max_len={"visual": 10, "audio": 50}, split_rule="random:1,0,0:3"
        ),
    )
    data = load_dataset(str(summary.out))
    train = data.splits["train"]
    assert not data.aligned and len(train) == 3 and summary.split_sizes["test"] == 0
    assert data.lengths == {"text": 50, "visual": 10, "audio": 50}
    np.testing.assert_array_equal(train.masks["audio"], 1)  # 200+ frames pooled into 50 bins
    np.testing.assert_array_equal(train.masks["text"][:, :7], [[1] * 6 + [0]] * 3)
    assert train.masks["visual"][0, 0] == 1 and train.masks["visual"][0, -1] == 0  # no face


def test_unknown_and_unlabelled_clips_are_named(tmp_path, caplog):
    make_store(tmp_path / "features", ["a.mp4", "b.mp4", "c.mp4"])
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy,split\na,1,train\nzz,1,test\n")
    with caplog.at_level(logging.WARNING, logger="pipeline.build"):
        summary = build_dataset(tmp_path / "features", labels, tmp_path / "out")
    assert summary.joined == 1
    assert summary.labels_without_features == ["zz"]
    assert summary.features_without_labels == ["b.mp4", "c.mp4"]
    assert "zz" in caplog.text and "b.mp4, c.mp4" in caplog.text
    with pytest.raises(PipelineError, match="zz"):
        build_dataset(tmp_path / "features", labels, tmp_path / "out2", BuildOptions(strict=True))


def test_label_ids_join_by_id_path_or_file_name_when_unambiguous(tmp_path):
    make_store(tmp_path / "features", ["day1/a.mp4", "b.mp4", "x/c.mp4", "y/c.mp4"])
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy\na,1\nb,0\nc,1\n")
    summary = build_dataset(
        tmp_path / "features", labels, tmp_path / "out", BuildOptions(split_rule="random:1,0,0")
    )
    assert summary.joined == 2 and summary.labels_without_features == ["c"]  # c: two clips
    assert load_dataset(str(summary.out)).splits["train"].ids == ["a", "b"]


def test_nothing_joins_is_an_error_naming_store_ids(tmp_path):
    make_store(tmp_path / "features", ["a.mp4"])
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy\nx,1\ny,0\n")
    with pytest.raises(PipelineError, match=r"labels\.csv: no labelled clip .* a\.mp4"):
        build_dataset(tmp_path / "features", labels, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_clip_missing_a_modality_is_left_out_and_reported(tmp_path):
    make_store(tmp_path / "features", ["a.mp4", "b.mp4"], skip=("b.mp4", "visual"))
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy\na.mp4,1\nb.mp4,0\n")
    summary = build_dataset(
        tmp_path / "features", labels, tmp_path / "out", BuildOptions(split_rule="random:1,0,0")
    )
    assert summary.joined == 1 and summary.incomplete == {"b.mp4": ["visual"]}


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("name,joy\na,1\n", r"no clip id column; expected a column named 'clip_id' or 'id'"),
        ("clip_id,split\na,train\n", r"no label columns"),
        ("clip_id,joy,notes\na,1,great\n", r"column 'notes' row 2 has 'great'; expected a number"),
        ("clip_id,joy\na,\n", r"column 'joy' row 2 has ''"),
        ("clip_id,joy,split\na,1,holdout\n", r"column 'split' row 2 has 'holdout'"),
        ("clip_id,joy\na,1\na,0\n", r"repeats clip ids \(a\)"),
        ("clip_id,joy\n", r"no rows"),
    ],
)
def test_bad_labels_csv_gives_one_clear_line(tmp_path, csv, message):
    path = write_csv(tmp_path / "labels.csv", csv)
    with pytest.raises(PipelineError, match=message) as error:
        read_labels(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_labels_file_and_features_folder(tmp_path):
    with pytest.raises(PipelineError, match="labels file not found"):
        read_labels(tmp_path / "nope.csv")
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy\na,1\n")
    with pytest.raises(PipelineError, match="features folder not found"):
        build_dataset(tmp_path / "missing", labels, tmp_path / "out")


def test_labels_are_binarised_and_split_aliases_accepted(tmp_path):
    path = write_csv(
        tmp_path / "l.csv", " ID , anger , joy , Split \nx, 0.0, 3, val\ny, -1, 0.2, dev\n"
    )
    table = read_labels(path)
    assert table.ids == ["x", "y"] and table.label_names == ["anger", "joy"]
    np.testing.assert_array_equal(table.labels, [[0, 1], [0, 1]])
    assert table.splits == ["valid", "valid"]


def test_random_split_rule_is_deterministic_per_id():
    ids = [f"clip{i:04d}" for i in range(2000)]
    splits = assign_splits(ids, "random:0.8,0.1,0.1:7")
    assert splits == assign_splits(ids, "random:0.8,0.1,0.1:7")
    assert assign_splits(ids[500:900], "random:0.8,0.1,0.1:7") == splits[500:900]
    counts = {s: splits.count(s) for s in ("train", "valid", "test")}
    assert 1500 < counts["train"] < 1700 and 130 < counts["valid"] < 270
    assert splits != assign_splits(ids, "random:0.8,0.1,0.1:8")
    with pytest.raises(PipelineError, match="random:TRAIN,VALID,TEST"):
        assign_splits(ids, "random:0.8,0.2")


def test_parse_max_len():
    assert parse_max_len("40") == {"text": 40, "visual": 40, "audio": 40}
    assert parse_max_len("text=30, audio=200") == {"text": 30, "audio": 200}
    assert parse_max_len(None) == {}
    for bad in ("speech=5", "text=0", "ten"):
        with pytest.raises(PipelineError, match="--max-len"):
            parse_max_len(bad)


def test_segmentation_travels_in_the_feature_recipe_and_old_recipes_are_whole_clips(tmp_path):
    make_store(tmp_path / "features", ["a.mp4", "b.mp4"])
    labels = write_csv(tmp_path / "labels.csv", "clip_id,joy\na.mp4,1\nb.mp4,0\n")
    summary = build_dataset(tmp_path / "features", labels, tmp_path / "dataset")
    data = load_dataset(str(summary.out))
    assert data.feature_spec["segmentation"] == {"how": "none"}
    recipe = FeatureRecipe.from_dict(data.feature_spec)
    assert recipe.segmentation == WHOLE_CLIPS and recipe.specs == SPECS
    assert recipe.to_dict() == data.feature_spec
    old = {k: v for k, v in data.feature_spec.items() if k != "segmentation"}
    assert FeatureRecipe.from_dict(old) == recipe
    # segments of two different segmentations do not mix in one dataset
    store = FeatureStore(tmp_path / "features")
    manifest = store.manifest()
    with store.open_manifest() as writer:
        for clip_id, how in (("a.mp4", "fixed"), ("b.mp4", "transcript")):
            record = manifest[clip_id]
            record.clip_id, record.time = f"{clip_id}@0.000-2.000", 0.0
            record.segment = {"recording": clip_id, "segmentation": {"how": how}}
            writer.append(record)
    mixed = write_csv(
        tmp_path / "mixed.csv", "clip_id,joy\na.mp4@0.000-2.000,1\nb.mp4@0.000-2.000,0\n"
    )
    with pytest.raises(PipelineError, match="2 different segmentations"):
        build_dataset(tmp_path / "features", mixed, tmp_path / "mixed")

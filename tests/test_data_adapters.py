"""Every adapter on small files written in the real formats."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from carat.data import (
    M3ED_LABELS,
    MOSEI_LABELS,
    load_dataset,
    read_csd,
    read_packed,
    write_csd,
    write_packed,
)
from carat.data.csd import standard_mosei_folds
from carat.data.types import MODALITIES, SPLITS, MultimodalDataset, SplitData
from carat.errors import DataError

DIMS = {"text": 300, "visual": 35, "audio": 74}
SIZES = {"train": 5, "valid": 3, "test": 4}
PT_KEY = {"text": "src-text", "visual": "src-visual", "audio": "src-audio"}


def _label_sets(rng: np.random.Generator, n: int, num_labels: int) -> list[list[int]]:
    return [
        sorted(rng.choice(num_labels, size=rng.integers(0, 3), replace=False)) for _ in range(n)
    ]


def _pt_dict(seed: int, length: int = 6, num_labels: int = 6, dims=DIMS) -> dict:
    """A CARAT train_valid_test.pt dict, with the keys and value types of the real file."""
    rng = np.random.default_rng(seed)
    data: dict = {}
    for split, n in SIZES.items():
        part = {
            PT_KEY[m]: rng.normal(size=(n, length, d)).astype(np.float32) for m, d in dims.items()
        }
        part["src-audio"][0, 1, 2] = -np.inf
        part["tgt"] = [[2, *(4 + c for c in cols), 3] for cols in _label_sets(rng, n, num_labels)]
        data[split] = part
    data["dict"] = {"src": {"<blank>": 0, "<unk>": 1, "the": 2}, "tgt": {"<s>": 2, "</s>": 3}}
    data["settings"] = argparse.Namespace(max_src_seq_len=length, max_tgt_seq_len=8)
    return data


def _multihot(tgt: list[list[int]], num_labels: int) -> np.ndarray:
    out = np.zeros((len(tgt), num_labels), dtype=np.float32)
    for i, tokens in enumerate(tgt):
        out[i, [t - 4 for t in tokens[1:-1]]] = 1
    return out


# --- CARAT/TAILOR .pt -----------------------------------------------------------------


def test_mosei_pt_reads_features_labels_and_masks(tmp_path: Path) -> None:
    raw = _pt_dict(seed=1)
    for key in PT_KEY.values():
        raw["train"][key][2, 4:] = 0  # clip 2 of train is 4 steps long, zero-padded after
        raw["valid"][key][1] = 0  # an all-zero clip keeps an all-ones mask
    raw["train"]["src-text"][3, 5] = 0  # one modality zero at a step is not padding
    torch.save(raw, tmp_path / "train_valid_test.pt")
    ds = load_dataset("mosei", str(tmp_path))
    assert ds.label_names == MOSEI_LABELS and ds.aligned and ds.num_labels == 6
    assert ds.dims == DIMS and ds.lengths == {m: 6 for m in MODALITIES}
    for split in SPLITS:
        got = ds.splits[split]
        for m in MODALITIES:
            want = raw[split][PT_KEY[m]].copy()
            want[~np.isfinite(want)] = 0
            np.testing.assert_array_equal(got.features[m], want)
            assert got.features[m].dtype == np.float32
            assert got.masks[m].dtype == np.int64
            want_mask = np.ones((SIZES[split], 6), np.int64)
            if split == "train":
                want_mask[2, 4:] = 0
            np.testing.assert_array_equal(got.masks[m], want_mask)
        np.testing.assert_array_equal(got.labels, _multihot(raw[split]["tgt"], 6))
        assert got.ids == [f"{split}-{i}" for i in range(SIZES[split])]
    assert ds.splits["train"].features["audio"][0, 1, 2] == 0.0


def test_mosei_pt_with_lists_of_per_clip_arrays(tmp_path: Path) -> None:
    raw = _pt_dict(seed=2)
    for split in SPLITS:
        for key in PT_KEY.values():
            raw[split][key] = list(raw[split][key])  # N arrays [L, D], as the loader indexes them
    path = tmp_path / "lists.pt"
    torch.save(raw, path)
    ds = load_dataset(str(path))
    assert ds.splits["valid"].features["visual"].shape == (3, 6, 35)


def test_mosei_pt_malformed_and_missing(tmp_path: Path) -> None:
    raw = _pt_dict(seed=3)
    del raw["valid"]["tgt"]
    torch.save(raw, tmp_path / "train_valid_test.pt")
    with pytest.raises(DataError) as err:
        load_dataset("mosei", str(tmp_path))
    text = str(err.value)
    assert "train_valid_test.pt" in text and "'valid' lacks tgt" in text
    assert "Google-Drive link in the CARAT README" in text and "\n" not in text
    with pytest.raises(DataError, match=r"empty.train_valid_test\.pt: file not found; expected"):
        load_dataset("mosei", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("mosei")


def test_label_token_out_of_range_is_refused(tmp_path: Path) -> None:
    raw = _pt_dict(seed=4)
    raw["test"]["tgt"][1] = [2, 12, 3]
    torch.save(raw, tmp_path / "train_valid_test.pt")
    with pytest.raises(DataError, match=r"test\.tgt\[1\] has label token 12 outside 4\.\.9"):
        load_dataset("mosei", str(tmp_path))


# --- MulT pickles ---------------------------------------------------------------------


def _mult_dict(seed: int, lengths: dict[str, int], with_ids: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    keys = {"text": "text", "visual": "vision", "audio": "audio"}
    data = {}
    for split, n in SIZES.items():
        part = {keys[m]: rng.normal(size=(n, lengths[m], DIMS[m])).astype(np.float32) for m in DIMS}
        part["labels"] = rng.normal(size=(n, 1, 1)).astype(np.float32)  # sentiment, unused
        if with_ids:
            part["id"] = np.array([[f"vid{split}{i // 2}", f"{i % 2}"] for i in range(n)])
        data[split] = part
    return data


def test_mult_unaligned_takes_labels_from_the_pt_by_position(tmp_path: Path) -> None:
    pt = _pt_dict(seed=5)
    torch.save(pt, tmp_path / "train_valid_test.pt")
    mult = _mult_dict(seed=6, lengths={"text": 5, "visual": 12, "audio": 12})
    mult["test"]["vision"][0, :3] = 0  # zero padding at the front, visual only
    (tmp_path / "mosei_senti_data_noalign.pkl").write_bytes(pickle.dumps(mult, protocol=4))
    ds = load_dataset("mosei-unaligned", str(tmp_path))
    assert ds.splits["test"].masks["visual"][0].tolist() == [0] * 3 + [1] * 9
    assert ds.splits["test"].masks["audio"][0].tolist() == [1] * 12
    assert not ds.aligned and ds.name == "mosei-unaligned"
    assert ds.lengths == {"text": 5, "visual": 12, "audio": 12}
    for split in SPLITS:
        got = ds.splits[split]
        np.testing.assert_array_equal(got.features["visual"], mult[split]["vision"])
        np.testing.assert_array_equal(got.labels, _multihot(pt[split]["tgt"], 6))
        assert got.ids[:2] == [f"vid{split}0_0", f"vid{split}0_1"]


def test_mult_joins_labels_by_clip_id_when_both_files_have_ids(tmp_path: Path) -> None:
    pt = _pt_dict(seed=7)
    mult = _mult_dict(seed=8, lengths={"text": 4, "visual": 4, "audio": 4})
    for split, n in SIZES.items():
        mult[split]["id"] = np.array([f"clip{split}{i}" for i in range(n)])
        pt[split]["id"] = [f"clip{split}{i}" for i in reversed(range(n))]  # opposite order
    torch.save(pt, tmp_path / "train_valid_test.pt")
    (tmp_path / "mosei_senti_data.pkl").write_bytes(pickle.dumps(mult, protocol=2))
    ds = load_dataset(str(tmp_path / "mosei_senti_data.pkl"))
    assert ds.aligned
    for split in SPLITS:
        want = _multihot(pt[split]["tgt"], 6)[::-1]
        np.testing.assert_array_equal(ds.splits[split].labels, want)

    pt["valid"]["id"][0] = "someone-else"
    torch.save(pt, tmp_path / "train_valid_test.pt")
    with pytest.raises(DataError, match=r"split 'valid': 1 clip ids .* have no labels in"):
        load_dataset(str(tmp_path / "mosei_senti_data.pkl"))


def test_mult_count_mismatch_is_refused_naming_both_files(tmp_path: Path) -> None:
    pt = _pt_dict(seed=9)
    pt["test"]["tgt"].append([2, 4, 3])
    for key in PT_KEY.values():
        pt["test"][key] = np.concatenate([pt["test"][key], pt["test"][key][:1]])
    torch.save(pt, tmp_path / "train_valid_test.pt")
    mult = _mult_dict(seed=10, lengths={"text": 5, "visual": 12, "audio": 12}, with_ids=False)
    (tmp_path / "mosei_senti_data_noalign.pkl").write_bytes(pickle.dumps(mult))
    with pytest.raises(DataError) as err:
        load_dataset("mosei-unaligned", str(tmp_path))
    text = str(err.value)
    assert "mosei_senti_data_noalign.pkl split 'test' has 4 clips" in text
    assert "train_valid_test.pt has 5 labelled clips" in text


# --- CMU SDK computational sequences ------------------------------------------------


def _sdk_metadata(root: str) -> dict[str, str]:
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    meta = {key: f"test {key}" for key in featuresetMetadataTemplate}
    meta["root name"] = root
    return meta


def _sdk_write(path: Path, root: str, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    from mmsdk import mmdatasdk

    seq = mmdatasdk.computational_sequence(root)
    seq.setData({k: {"features": f, "intervals": i} for k, (f, i) in data.items()}, root)
    seq.setMetadata(_sdk_metadata(root), root)
    seq.deploy(str(path))


def _sequence(rng: np.random.Generator, steps: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.sort(rng.uniform(0, 10, size=steps))
    return rng.normal(size=(steps, dim)), np.stack([starts, starts + 0.3], axis=1)


def test_sdk_reads_what_we_write_and_we_read_what_it_writes(tmp_path: Path) -> None:
    from mmsdk import mmdatasdk

    rng = np.random.default_rng(11)
    data = {"vidA[0]": _sequence(rng, 4, 74), "vidB": _sequence(rng, 7, 74)}
    ours = tmp_path / "ours.csd"
    write_csd(ours, "COVAREP", data, {"dataset name": "unit test"})
    sdk_view = mmdatasdk.computational_sequence(str(ours))
    assert sdk_view.metadata["root name"].decode() == "COVAREP"  # h5py 3 hands the SDK bytes
    assert set(sdk_view.data) == set(data)
    for key, (features, intervals) in data.items():
        np.testing.assert_array_equal(sdk_view[key]["features"][()], features)
        np.testing.assert_array_equal(sdk_view[key]["intervals"][()], intervals)
    dataset = mmdatasdk.mmdataset({"covarep": str(ours)})
    assert set(dataset["covarep"].keys()) == set(data)

    theirs = tmp_path / "theirs.csd"
    _sdk_write(theirs, "FACET 4.2", data)
    root, read, meta = read_csd(theirs)
    assert root == "FACET 4.2" and meta["dataset name"] == "test dataset name"
    assert set(read) == set(data)
    for key, (features, intervals) in data.items():
        np.testing.assert_array_equal(read[key][0], features)
        np.testing.assert_array_equal(read[key][1], intervals)

    root, read, meta = read_csd(ours)
    assert root == "COVAREP" and meta["dataset name"] == "unit test"
    assert meta["creator"] == "not given"
    np.testing.assert_array_equal(read["vidB"][0], data["vidB"][0])


def test_clip_ids_with_slashes_survive_a_csd_round_trip(tmp_path: Path) -> None:
    from mmsdk import mmdatasdk

    rng = np.random.default_rng(21)
    data = {"archive.tar/dir/clip 1": _sequence(rng, 3, 5), "odd%2Fname": _sequence(rng, 2, 5)}
    write_csd(tmp_path / "x.csd", "visual", data, {})
    _, read, _ = read_csd(tmp_path / "x.csd")
    assert set(read) == set(data)
    np.testing.assert_array_equal(
        read["archive.tar/dir/clip 1"][0], data["archive.tar/dir/clip 1"][0]
    )
    sdk_keys = set(mmdatasdk.computational_sequence(str(tmp_path / "x.csd")).data)
    assert sdk_keys == {"archive.tar%2Fdir%2Fclip 1", "odd%252Fname"}


def _csd_folder(folder: Path, rng: np.random.Generator) -> dict[str, dict]:
    """Word-aligned MOSEI sequences for two standard-fold videos per split, written by the
    SDK (text, labels) and by us (visual, audio); returns what each entry holds."""
    folds = standard_mosei_folds()
    assert folds is not None
    entries = {}
    for split in SPLITS:
        for video in folds[split][:2]:
            for k in range(2):
                words = int(rng.integers(1, 8))
                intervals = np.stack([np.arange(words), np.arange(words) + 1.0], axis=1)
                label_row = np.concatenate([[rng.normal()], rng.choice([0.0, 0.33, 1.0], 6)])
                entries[f"{video}[{k}]"] = {
                    "split": split,
                    "words": words,
                    **{m: rng.normal(size=(words, d)) for m, d in DIMS.items()},
                    "intervals": intervals,
                    "labels": label_row[None, :],
                }

    def seq(key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {e: (v[key], v["intervals"]) for e, v in entries.items()}

    folder.mkdir()
    _sdk_write(folder / "glove_vectors.csd", "glove_vectors", seq("text"))
    write_csd(folder / "FACET.csd", "FACET 4.2", seq("visual"), {})
    write_csd(folder / "covarep.csd", "COVAREP", seq("audio"), {})
    labels = {e: (v["labels"], np.array([[0.0, float(v["words"])]])) for e, v in entries.items()}
    _sdk_write(folder / "labels.csd", "All Labels", labels)
    return entries


def test_csd_folder_in_standard_folds(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    entries = _csd_folder(tmp_path / "mosei", rng)
    ds = load_dataset(str(tmp_path / "mosei"))
    assert ds.label_names == MOSEI_LABELS and ds.aligned
    assert ds.lengths == {m: 60 for m in MODALITIES} and ds.dims == DIMS
    for split in SPLITS:
        got = ds.splits[split]
        want_ids = sorted(
            (e for e, v in entries.items() if v["split"] == split),
            key=lambda e: (e.split("[")[0], int(e.split("[")[1][:-1])),
        )
        assert got.ids == want_ids
        for i, entry in enumerate(got.ids):
            words = entries[entry]["words"]
            for m in MODALITIES:
                np.testing.assert_allclose(got.features[m][i, :words], entries[entry][m], rtol=1e-6)
                assert not got.features[m][i, words:].any()
                assert got.masks[m][i].tolist() == [1] * words + [0] * (60 - words)
            want_labels = (entries[entry]["labels"][0, 1:] > 0).astype(np.float32)
            np.testing.assert_array_equal(got.labels[i], want_labels)


def test_csd_folder_with_a_folds_file_and_unaligned_refusal(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    folder = tmp_path / "mosei"
    entries = _csd_folder(folder, rng)
    videos = sorted({e.split("[")[0] for e in entries})
    folds = {"train": videos[:4], "valid": videos[4:5], "test": videos[5:]}
    (folder / "folds.json").write_text(json.dumps(folds))
    ds = load_dataset(str(folder))
    assert {e.split("[")[0] for e in ds.splits["valid"].ids} == {videos[4]}
    assert len(ds.splits["train"]) == 8
    with pytest.raises(DataError, match=r"nope\.json: not a readable folds file"):
        load_dataset(str(folder), folds=tmp_path / "nope.json")

    _, audio, _ = read_csd(folder / "covarep.csd")
    first = sorted(audio)[0]
    features, intervals = audio[first]
    audio[first] = (np.concatenate([features, features]), np.concatenate([intervals, intervals]))
    write_csd(folder / "covarep.csd", "COVAREP", audio, {})
    with pytest.raises(DataError, match=r"is not word-aligned .* align the sequences to the words"):
        load_dataset(str(folder))


def test_csd_folder_without_labels_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    folder = tmp_path / "mosei"
    _csd_folder(folder, rng)
    (folder / "labels.csd").unlink()
    with pytest.raises(DataError, match=r"no sequence for labels .*CMU Multimodal SDK"):
        load_dataset(str(folder))


# --- M3ED ------------------------------------------------------------------------------


def _m3ed_pickle(rng: np.random.Generator) -> tuple[list, dict[str, int]]:
    utterances = {
        "d_train0": 3,
        "d_train1": 65,
        "d_train2": 1,
        "d_val0": 2,
        "d_test0": 4,
        "d_test1": 5,
    }
    labels = {d: [int(x) for x in rng.integers(0, 7, size=n)] for d, n in utterances.items()}
    labels["d_train2"] = ["Surprise"]  # some releases spell the emotion out
    text = {d: rng.normal(size=(n, 768)).astype(np.float32) for d, n in utterances.items()}
    visual = {d: [rng.normal(size=1024) for _ in range(n)] for d, n in utterances.items()}
    audio = {d: rng.normal(size=(n, 342)) for d, n in utterances.items()}
    data = [
        "speakers",
        "utterance ids",
        labels,
        text,
        visual,
        audio,
        "unused",
        ["d_train0", "d_train1", "d_train2"],
        ["d_val0"],
        ["d_test0", "d_test1"],
    ]
    return data, utterances


def test_m3ed_feature_pickle_gives_dialogue_label_sets(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    data, utterances = _m3ed_pickle(rng)
    (tmp_path / "m3ed_feats.pkl").write_bytes(pickle.dumps(data, protocol=4))
    ds = load_dataset(str(tmp_path / "m3ed_feats.pkl"))
    assert ds.label_names == M3ED_LABELS and ds.name == "m3ed"
    assert ds.dims == {"text": 768, "visual": 1024, "audio": 342}
    assert ds.lengths == {m: 60 for m in MODALITIES}
    train = ds.splits["train"]
    assert train.ids == ["d_train0", "d_train1", "d_train2"]
    want0 = np.zeros(7, np.float32)
    want0[data[2]["d_train0"]] = 1
    np.testing.assert_array_equal(train.labels[0], want0)
    assert train.labels[2].tolist() == [0, 0, 0, 0, 0, 0, 1]  # "Surprise" is column 6
    np.testing.assert_array_equal(train.features["text"][1], data[3]["d_train1"][:60])
    assert train.masks["audio"][1].sum() == 60 and train.masks["audio"][0].sum() == 3
    want_visual = np.stack(data[4]["d_train0"]).astype(np.float32)  # float64 rows in the file
    np.testing.assert_array_equal(train.features["visual"][0, :3], want_visual)
    assert not train.features["visual"][0, 3:].any()
    assert np.asarray(ds.splits["test"].masks["text"]).sum(axis=1).tolist() == [4, 5]


def test_m3ed_converted_pt_and_named_lookup(tmp_path: Path) -> None:
    raw = _pt_dict(seed=16, length=60, num_labels=7, dims={"text": 8, "visual": 6, "audio": 5})
    raw["train"]["tgt"][0] = [2, 10, 3]  # surprise, the seventh label
    torch.save(raw, tmp_path / "m3ed_data.pt")
    ds = load_dataset("m3ed", str(tmp_path))
    assert ds.label_names == M3ED_LABELS
    np.testing.assert_array_equal(ds.splits["test"].labels, _multihot(raw["test"]["tgt"], 7))
    assert ds.splits["train"].labels[0].tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert load_dataset(str(tmp_path / "m3ed_data.pt")).label_names == M3ED_LABELS
    with pytest.raises(DataError, match="none of m3ed_data.pt"):
        load_dataset("m3ed", str(tmp_path / "elsewhere"))


def test_m3ed_unknown_emotion_is_refused(tmp_path: Path) -> None:
    data, _ = _m3ed_pickle(np.random.default_rng(17))
    data[2]["d_val0"] = [3, 9]
    (tmp_path / "m3ed.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"dialogue 'd_val0' has emotion 9"):
        load_dataset(str(tmp_path / "m3ed.pkl"))


# --- packed Arrow datasets -------------------------------------------------------------


def _dataset(rng: np.random.Generator) -> MultimodalDataset:
    lengths, dims = {"text": 7, "visual": 20, "audio": 25}, {"text": 4, "visual": 3, "audio": 5}
    splits = {}
    for split, n in SIZES.items():
        features = {
            m: rng.normal(size=(n, lengths[m], dims[m])).astype(np.float32) for m in MODALITIES
        }
        masks = {m: (rng.random((n, lengths[m])) < 0.7).astype(np.int64) for m in MODALITIES}
        labels = (rng.random((n, 3)) < 0.5).astype(np.float32)
        splits[split] = SplitData(features, masks, labels, [f"{split}/clip {i}" for i in range(n)])
    spec = {"text": {"name": "glove", "version": "1", "dim": 4}}
    return MultimodalDataset("mine", splits, ["a", "b", "c"], False, spec, "videos/")


def _shards(folder: Path, split: str) -> list[str]:
    return json.loads((folder / "dataset.json").read_text())["splits"][split]["shards"]


def test_packed_round_trip_is_exact(tmp_path: Path) -> None:
    ds = _dataset(np.random.default_rng(18))
    out = write_packed(tmp_path / "packed", ds, shard_rows=2)
    assert len(_shards(out, "train")) == 3 and len(_shards(out, "valid")) == 2
    assert sorted(p.name for p in out.glob("*.arrow")) == sorted(
        name for split in SPLITS for name in _shards(out, split)
    )
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["lengths"] == {"text": 7, "visual": 20, "audio": 25}
    assert meta["splits"]["valid"]["rows"] == 3 and meta["format_version"] == 1
    for back in (read_packed(out), load_dataset(str(out))):
        assert back.name == "mine" and back.label_names == ["a", "b", "c"]
        assert back.aligned is False and back.feature_spec == ds.feature_spec
        for split in SPLITS:
            a, b = ds.splits[split], back.splits[split]
            assert a.ids == b.ids
            np.testing.assert_array_equal(a.labels, b.labels)
            for m in MODALITIES:
                np.testing.assert_array_equal(a.features[m], b.features[m])
                np.testing.assert_array_equal(a.masks[m], b.masks[m])
                assert b.masks[m].dtype == np.int64 and b.features[m].dtype == np.float32


def test_packed_shard_is_readable_alone(tmp_path: Path) -> None:
    import pyarrow.feather as feather

    ds = _dataset(np.random.default_rng(20))
    out = write_packed(tmp_path / "packed", ds, shard_rows=10)
    table = feather.read_table(out / _shards(out, "test")[0])
    assert table.column("id").to_pylist() == ds.splits["test"].ids
    shape = table.column("visual_shape")[1].as_py()
    row = np.array(table.column("visual")[1].as_py(), dtype=np.float32).reshape(shape)
    np.testing.assert_array_equal(row, ds.splits["test"].features["visual"][1])


def test_packed_rewrite_keeps_the_old_shards_until_done(tmp_path: Path) -> None:
    ds = _dataset(np.random.default_rng(19))
    out = write_packed(tmp_path / "packed", ds, shard_rows=1)
    old = {name for split in SPLITS for name in _shards(out, split)}
    assert len(old) == 12
    write_packed(out, ds, shard_rows=10)
    new = {name for split in SPLITS for name in _shards(out, split)}
    assert len(new) == 3 and not new & old
    assert {p.name for p in out.glob("*.arrow")} == new  # the old generation is gone
    assert not list(out.glob(".*"))  # no temporary files left behind
    missing = _shards(out, "valid")[0]
    (out / missing).unlink()
    with pytest.raises(DataError, match=rf"{missing}: shard listed in dataset.json is missing"):
        read_packed(out)
    (out / "dataset.json").unlink()
    with pytest.raises(DataError, match="no dataset.json"):
        read_packed(out)


def test_unknown_paths_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: not found; expected mosei, mosei-unaligned"):
        load_dataset(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="folder has neither dataset.json nor .csd files"):
        load_dataset(str(tmp_path / "empty"))

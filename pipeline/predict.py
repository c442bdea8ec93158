"""`carat-cli predict`: new clips -> the model's own featurizers -> labels, scores, modalities.

A model directory records the featurizer spec its training data was built with (and the
alignment settings). Prediction rebuilds exactly those featurizers, refuses to run when this
install cannot (another featurizer version, other fixed parameters), extracts through a feature
store used as a cache (``$CARAT_CACHE/features``, default ``~/.cache/carat/features``), so
predicting the same clip again skips extraction, aligns the clip as the dataset was aligned, and
runs the model in eval mode. For each label it reports the probability, the yes/no decision at
the model's threshold and the modality whose classifier won the max-pool (CARAT's "most relevant
modality"); ``explain`` adds how each label's probability moves when one modality is blanked out.
"""

from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carat.data.types import MODALITIES, Batch
from carat.modeldir import load_model
from featurizers.base import FeatureSequence, Featurizer, FeaturizerSpec, MediaError
from featurizers.cache import cache_dir
from pipeline.align import AlignSettings, align_clips
from pipeline.errors import PipelineError
from pipeline.sources import OpenedClip, Refusal, open_clips, scan
from pipeline.store import FeatureStore

log = logging.getLogger(__name__)

# A params entry that names one transcript file; predict's --transcript sets it per call.
_TRANSCRIPT_PARAM = "transcript"


@dataclass
class LabelPrediction:
    """One label of one clip. ``modality`` is the max-pool winner ("text", "visual", "audio"),
    None for a model without per-modality classifiers. ``deltas`` (with ``explain``): modality
    -> probability with that modality blanked out minus the full probability."""

    label: str
    probability: float
    predicted: bool
    modality: str | None
    deltas: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "probability": round(self.probability, 6),
            "predicted": self.predicted,
            "modality": self.modality,
        }
        if self.deltas is not None:
            out["deltas"] = {m: round(d, 6) for m, d in self.deltas.items()}
        return out


@dataclass
class ClipPrediction:
    """The model's answer for one clip, or the one-line reason it has none (``error``)."""

    clip_id: str
    source: str
    labels: list[LabelPrediction] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    transcript: str | None = None  # the transcript file read, None when speech recognition ran
    cached: bool = False  # every modality came from the feature cache
    threshold: float | None = None  # the model's: a label is predicted at or above it
    error: str | None = None

    @property
    def predicted_labels(self) -> list[str]:
        return [p.label for p in self.labels if p.predicted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "predicted": self.predicted_labels,
            "labels": [p.to_dict() for p in self.labels],
            "words": self.words,
            "transcript": self.transcript,
            "cached": self.cached,
            "threshold": self.threshold,
            "error": self.error,
        }


def default_cache_dir() -> Path:
    """``$CARAT_CACHE/features``, else ``~/.cache/carat/features``."""
    return cache_dir() / "features"


# --- rebuilding the model's featurizers -------------------------------------------------------


def rebuild_featurizers(
    feature_spec: dict[str, Any] | None, model_dir: Path
) -> dict[str, Featurizer]:
    """carat modality -> this install's featurizer with the model's exact spec; or one clear
    PipelineError naming the model, the modality and what differs."""
    if not feature_spec or any(m not in feature_spec for m in MODALITIES):
        raise PipelineError(
            f"{model_dir}: the model records no featurizer spec (it was trained on a benchmark "
            "file, not on features from `carat-cli extract`), so predict cannot rebuild its "
            "features; train on a dataset built with `carat-cli align`"
        )
    featurizers: dict[str, Featurizer] = {}
    for modality in MODALITIES:
        saved = FeaturizerSpec.from_dict(feature_spec[modality])
        featurizer = _featurizer_like(saved)
        if featurizer is None:
            raise PipelineError(
                f"{model_dir}: the model's {modality} features come from featurizer "
                f"{saved.name!r}, which this install does not have; install the carat version "
                "the model was trained with"
            )
        if featurizer.spec.key() != saved.key():
            differences = spec_differences(saved, featurizer.spec)
            raise PipelineError(
                f"{model_dir}: the model's {modality} features were made by {saved.name} "
                f"{saved.version} and this install's differ ({differences}); predict needs "
                "identical features: retrain on features from this install or use the carat "
                "version the model was trained with"
            )
        featurizers[modality] = featurizer
    return featurizers


def _featurizer_like(saved: FeaturizerSpec) -> Featurizer | None:
    """The preset featurizer of ``saved``'s modality and name, built with its parameters."""
    from featurizers.presets import PRESETS, build_featurizers

    modality = saved.modality  # the featurizer's own name: text, visual or acoustic
    for preset, choices in PRESETS.items():
        choice = choices[modality]
        accepted = _constructor_params(choice.module, choice.cls)
        params = {k: v for k, v in saved.params.items() if k in accepted and k != _TRANSCRIPT_PARAM}
        try:
            featurizer = build_featurizers(preset, [modality], **{modality: params})[modality]
        except (ValueError, TypeError, MediaError) as exc:
            log.debug("preset %s cannot build %s with %s: %s", preset, modality, params, exc)
            continue
        if featurizer.spec.name == saved.name:
            return featurizer
    return None


def _constructor_params(module: str, cls: str) -> set[str]:
    import importlib

    target = getattr(importlib.import_module(module), cls)
    return set(inspect.signature(target).parameters)


def spec_differences(saved: FeaturizerSpec, current: FeaturizerSpec) -> str:
    """What differs between two specs, for a one-line message."""
    parts = []
    if saved.name != current.name:
        parts.append(f"name {saved.name} vs {current.name}")
    if saved.version != current.version:
        parts.append(f"version {saved.version} vs {current.version}")
    if saved.dim_names != current.dim_names:
        parts.append(f"{saved.dim} vs {current.dim} dims")
    if saved.rate != current.rate:
        parts.append(f"rate {saved.rate} vs {current.rate}")
    for key in sorted(set(saved.params) | set(current.params)):
        old, new = saved.params.get(key, "(unset)"), current.params.get(key, "(unset)")
        if old != new:
            parts.append(f"{key} {old!r} vs {new!r}")
    return "model vs install: " + "; ".join(parts) if parts else "same declaration"


# --- predicting -------------------------------------------------------------------------------


class Predictor:
    """A loaded model with its featurizers, reused across calls (so later clips are warm)."""

    def __init__(
        self,
        model_dir: str | Path,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        self.model_dir = Path(model_dir)
        self.model, self.info = load_model(self.model_dir, device=device)
        self.device = torch.device(device)
        self.featurizers = rebuild_featurizers(self.info.feature_spec, self.model_dir)
        try:
            self.settings = AlignSettings.from_dict(self.info.feature_spec["alignment"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineError(
                f"{self.model_dir}: config.json has no usable alignment settings ({exc}); "
                "the model directory is damaged or from an older carat"
            ) from exc
        self.store = FeatureStore(cache_dir if cache_dir is not None else default_cache_dir())
        self._transcript_featurizers: dict[Path, Featurizer] = {}

    @property
    def label_names(self) -> list[str]:
        return list(self.info.label_names)

    def predict(
        self,
        inputs: Sequence[str | Path],
        transcript: str | Path | None = None,
        explain: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[ClipPrediction]:
        """Predict every clip of ``inputs`` (files, folders, list files, archives).

        A clip that cannot be used gets ``error`` and the others go on. ``transcript`` is one
        transcript file for the one clip given.
        """
        catalog = scan(list(inputs))
        total = len(catalog.clips) + len(catalog.refusals)
        if total == 0:
            raise PipelineError(
                f"{', '.join(str(i) for i in inputs)}: no clips found (looked for "
                "video/audio files); give clip files or folders that hold them"
            )
        text = self._text_featurizer(transcript, total)
        results = [ClipPrediction(r.clip_id, r.source, error=r.reason) for r in catalog.refusals]
        report = progress or (lambda done, total: None)
        report(len(results), total)
        for clip in self._opened(catalog):
            if isinstance(clip, Refusal):
                results.append(ClipPrediction(clip.clip_id, clip.source, error=clip.reason))
            else:
                try:
                    results.append(self._predict_clip(clip, text, transcript, explain))
                finally:
                    clip.release()
            report(len(results), total)
        return results

    def _opened(self, catalog) -> Iterator[OpenedClip | Refusal]:  # noqa: ANN001
        spool = Path(tempfile.mkdtemp(prefix="carat-predict-"))
        try:
            yield from open_clips(catalog, spool)
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    def _text_featurizer(self, transcript: str | Path | None, clips: int) -> Featurizer:
        """The model's text featurizer, reading ``transcript`` when one is given."""
        if transcript is None:
            return self.featurizers["text"]
        path = Path(transcript)
        if clips != 1:
            raise PipelineError(
                f"--transcript {path}: one transcript is for one clip, but {clips} clips were "
                "given; put each clip's transcript beside it instead (same name, .txt/.srt/.vtt/"
                ".json)"
            )
        if path not in self._transcript_featurizers:
            base = self.featurizers["text"]
            params = _constructor_params(type(base).__module__, type(base).__name__)
            kwargs = {k: v for k, v in base.spec.params.items() if k in params}
            self._transcript_featurizers[path] = type(base)(**kwargs, transcript=path)
        return self._transcript_featurizers[path]

    def _predict_clip(
        self,
        clip: OpenedClip,
        text: Featurizer,
        transcript: str | Path | None,
        explain: bool,
    ) -> ClipPrediction:
        featurizers = {**self.featurizers, "text": text}
        try:
            sequences, cached = self._features(clip, featurizers)
        except MediaError as exc:
            reason = str(exc).replace(str(clip.path), clip.source).splitlines()[0]
            return ClipPrediction(clip.clip_id, clip.source, error=reason)
        from featurizers.words import words_source

        source = words_source(clip.path, None if transcript is None else Path(transcript))
        words = list(sequences["text"].words or [])
        if not words:
            log.warning("%s: no words found; the text modality is empty", clip.source)
        scores, winners, deltas = self._score(sequences, explain)
        labels = [
            LabelPrediction(
                label=name,
                probability=float(scores[c]),
                predicted=bool(scores[c] >= self.info.threshold),
                modality=None if winners is None else MODALITIES[int(winners[c])],
                deltas=None if deltas is None else {m: float(d[c]) for m, d in deltas.items()},
            )
            for c, name in enumerate(self.info.label_names)
        ]
        return ClipPrediction(
            clip_id=clip.clip_id,
            source=clip.source,
            labels=labels,
            words=words,
            transcript=None if source is None else _shown_source(source, clip),
            cached=cached,
            threshold=self.info.threshold,
        )

    def _features(
        self, clip: OpenedClip, featurizers: dict[str, Featurizer]
    ) -> tuple[dict[str, FeatureSequence], bool]:
        """Each modality's features from the cache, else extracted (the clip decoded once)."""
        from featurizers.media import MediaClip

        sequences: dict[str, FeatureSequence] = {}
        media = None
        for modality, featurizer in featurizers.items():
            entry = self.store.entry_name(clip.content_hash, featurizer.spec.key())
            sequence = self.store.read(entry)
            if sequence is None:
                if media is None:
                    media = MediaClip(clip.path)
                sequence = featurizer.extract(media)
                meta = {"clip_id": clip.clip_id, "source": clip.source}
                self.store.write(clip.content_hash, sequence, meta)
                log.info("%s: %s features extracted", clip.source, modality)
            sequences[modality] = sequence
        return sequences, media is None

    @torch.no_grad()
    def _score(
        self, sequences: dict[str, FeatureSequence], explain: bool
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None]:
        """Scores [C] and winners [C] of the full clip; with ``explain``, per modality the
        scores with that modality's features zeroed and masked out, minus the full scores."""
        features, masks = align_clips([sequences], self.settings)
        batch = Batch(
            features={m: torch.from_numpy(features[m]).float().to(self.device) for m in MODALITIES},
            masks={m: torch.from_numpy(masks[m]).long().to(self.device) for m in MODALITIES},
        )
        out = self.model(batch)
        scores = out.scores.float().cpu().numpy()[0]
        winner = getattr(out, "winner", None)
        winners = None if winner is None else winner.cpu().numpy()[0]
        if not explain:
            return scores, winners, None
        deltas = {}
        for modality in MODALITIES:
            blank = Batch(
                features={**batch.features, modality: torch.zeros_like(batch.features[modality])},
                masks={**batch.masks, modality: torch.zeros_like(batch.masks[modality])},
            )
            deltas[modality] = self.model(blank).scores.float().cpu().numpy()[0] - scores
        return scores, winners, deltas


def _shown_source(source: Path, clip: OpenedClip) -> str:
    """A sidecar's name as the user knows it (not its spooled temporary copy)."""
    if clip.path != Path(clip.source) and source.parent == clip.path.parent:
        return f"{clip.source} ({source.suffix} sidecar)"
    return str(source)


def predict_clips(
    paths: Sequence[str | Path],
    model_dir: str | Path,
    transcript: str | Path | None = None,
    cache_dir: str | Path | None = None,
    explain: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[ClipPrediction]:
    """Load the model in ``model_dir`` and predict every clip of ``paths`` (see Predictor)."""
    predictor = Predictor(model_dir, cache_dir)
    return predictor.predict(paths, transcript=transcript, explain=explain, progress=progress)


# --- output formats ---------------------------------------------------------------------------

CSV_COLUMNS = ("clip_id", "source", "label", "probability", "predicted", "modality")


def format_table(predictions: Sequence[ClipPrediction]) -> str:
    """A readable table per clip: label, probability, yes/no, driving modality (and deltas)."""
    blocks = []
    for clip in predictions:
        if clip.error is not None:
            blocks.append(f"{clip.source}\n  error: {clip.error}")
            continue
        heard = " ".join(clip.words) or "(no words)"
        origin = clip.transcript or "speech recognition"
        lines = [f"{clip.source}", f'  words ({origin}): "{heard}"']
        explain = any(p.deltas is not None for p in clip.labels)
        decision = f"yes at >= {clip.threshold:.2f}" if clip.threshold is not None else "predicted"
        header = f"  {'label':<14} {'probability':>11}  {decision:<16}  {'driven by':<9}"
        if explain:
            header += "  " + "  ".join(f"{'-' + m:>8}" for m in MODALITIES)
        lines.append(header)
        for p in clip.labels:
            row = (
                f"  {p.label:<14} {p.probability:>11.3f}  {'yes' if p.predicted else 'no':<16}  "
                f"{p.modality or '-':<9}"
            )
            if p.deltas is not None:
                row += "  " + "  ".join(f"{p.deltas[m]:>+8.3f}" for m in MODALITIES)
            lines.append(row.rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_csv(predictions: Sequence[ClipPrediction]) -> str:
    """One row per clip and label (a failed clip: one row with its error)."""
    import csv
    import io

    explain = any(p.deltas is not None for clip in predictions for p in clip.labels)
    columns = [*CSV_COLUMNS, *(f"delta_{m}" for m in MODALITIES if explain), "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for clip in predictions:
        if clip.error is not None:
            writer.writerow({"clip_id": clip.clip_id, "source": clip.source, "error": clip.error})
            continue
        for p in clip.labels:
            row = {
                "clip_id": clip.clip_id,
                "source": clip.source,
                "label": p.label,
                "probability": f"{p.probability:.6f}",
                "predicted": int(p.predicted),
                "modality": p.modality or "",
            }
            row.update({f"delta_{m}": f"{d:.6f}" for m, d in (p.deltas or {}).items()})
            writer.writerow(row)
    return buffer.getvalue()

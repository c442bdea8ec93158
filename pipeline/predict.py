"""`carat-cli predict`: clips or whole recordings -> the model's own featurizers -> a timeline.

A model directory records the feature recipe its training data was made with
(``pipeline.recipe``: featurizer specs, alignment settings, segmentation). Prediction rebuilds
exactly those featurizers (``featurizers.registry``), refuses to run when this install cannot
(another featurizer version, other fixed parameters), and extracts through a feature store used
as a cache (``$CARAT_CACHE/features``, default ``~/.cache/carat/features``).

A recording is cut into utterance segments as the training data was cut, unless told otherwise
(``featurizers.segments``: transcript cues, speech recognition, voice activity or fixed windows;
under ``auto``, used for models trained on whole clips, a short clip stays one segment), each
segment is extracted once into the cache (so an interrupted long file resumes and a re-run is
free) and aligned as the dataset was aligned. Segments go through the model in small batches,
with the modalities that are really there (``pipeline.presence``): a segment without audio, face or
words is predicted from the rest, and only one with nothing at all is unpredictable. For each
label the output holds the probability, the yes/no decision at the model's threshold and each
modality's exact Shapley contribution (``carat.attribution``); "driven by" is the largest
positive one. The winner of CARAT's max-pool is kept as ``maxpool_winner`` (the paper's Figure 4
statistic), not as an explanation.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from carat.attribution import METHOD as ATTRIBUTION_METHOD
from carat.attribution import shapley
from carat.data.types import MODALITIES, Batch
from carat.modeldir import load_model
from featurizers.active_speaker import AUTO, parse_face
from featurizers.base import FeatureSequence, Featurizer, MediaError
from featurizers.cache import cache_dir
from featurizers.registry import SpecMismatch, registration
from featurizers.segments import SegmentationSpec
from featurizers.span import Span
from featurizers.speakers import parse_speakers
from pipeline import featurize
from pipeline.errors import PipelineError
from pipeline.presence import model_inputs
from pipeline.recipe import FeatureRecipe, RecipeError
from pipeline.sources import OpenedClip, Refusal, open_clips, scan
from pipeline.store import FeatureStore
from pipeline.timeline import LabelScore, SegmentResult, Timeline

log = logging.getLogger(__name__)

SEGMENT_BATCH = 16  # segments extracted, then scored together; bounds memory on long files


@dataclass
class ClipPrediction:
    """The model's answer for one input file: its timeline (one segment for a short clip), or
    the one-line reason it has none (``error``)."""

    clip_id: str
    source: str
    timeline: Timeline | None = None
    transcript: str | None = None  # the transcript file read, None when speech recognition ran
    cached: bool = False  # every segment's every modality came from the feature cache
    error: str | None = None

    @property
    def single(self) -> SegmentResult | None:
        """The only segment of a clip that was not cut (the classic one-clip answer)."""
        if self.timeline is None or len(self.timeline.segments) != 1:
            return None
        return self.timeline.segments[0]

    @property
    def labels(self) -> list[LabelScore]:
        return [] if self.single is None else self.single.labels

    @property
    def words(self) -> list[str]:
        """Every word heard, in order, over all segments."""
        if self.timeline is None:
            return []
        return [w for segment in self.timeline.segments for w in segment.words]

    @property
    def predicted_labels(self) -> list[str]:
        return [p.label for p in self.labels if p.predicted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready. ``labels``/``predicted``/``present``/``missing`` describe a clip of one
        segment (empty for a cut recording); ``segments`` always holds them all, and ``words``
        is every word heard."""
        single = self.single
        timeline = self.timeline
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "predicted": self.predicted_labels,
            "labels": [asdict(p) for p in self.labels],
            "words": self.words,
            "present": [] if single is None else single.present,
            "missing": {} if single is None else single.missing,
            "transcript": self.transcript,
            "cached": self.cached,
            "threshold": None if timeline is None else timeline.threshold,
            "attribution": ATTRIBUTION_METHOD,
            "duration": None if timeline is None else timeline.duration,
            "language": None if timeline is None else timeline.language,
            "orientation": None if timeline is None else timeline.orientation,
            "readable": None if timeline is None else timeline.readable,
            "segmentation": None if timeline is None else timeline.segmentation,
            "segments": []
            if timeline is None
            else [{**asdict(s), "speaker": s.speaker} for s in timeline.segments],
            "notes": [] if timeline is None else timeline.notes,
            "error": self.error,
        }


def default_cache_dir() -> Path:
    """``$CARAT_CACHE/features``, else ``~/.cache/carat/features``."""
    return cache_dir() / "features"


# --- the model's feature recipe ----------------------------------------------------------------


def model_recipe(feature_spec: dict[str, Any] | None, model_dir: Path) -> FeatureRecipe:
    """The feature recipe the model records, or one PipelineError naming the model."""
    if not feature_spec:
        raise PipelineError(
            f"{model_dir}: the model records no featurizer spec (it was trained on a benchmark "
            "file, not on features from `carat-cli extract`), so predict cannot rebuild its "
            "features; train on a dataset built with `carat-cli align`"
        )
    try:
        return FeatureRecipe.from_dict(feature_spec)
    except RecipeError as exc:
        raise PipelineError(
            f"{model_dir}: config.json has no usable feature recipe ({exc}); the model "
            "directory is damaged or from an older carat"
        ) from None


def rebuild_featurizers(recipe: FeatureRecipe, model_dir: Path) -> dict[str, Featurizer]:
    """carat modality -> this install's featurizer with the model's exact spec; or one clear
    PipelineError naming the model, the modality and what differs."""
    try:
        return recipe.featurizers()
    except SpecMismatch as exc:
        raise PipelineError(
            f"{model_dir}: the model's {exc.modality} features {exc.detail}; predict needs "
            "identical features: retrain on features from this install or use the carat "
            "version the model was trained with"
        ) from None


def _segmentation(
    segments: str | None, limits: dict[str, float], recipe: FeatureRecipe, speakers: str
) -> SegmentationSpec:
    """``--segments`` when given, else the model's; ``limits`` (min_len/max_len, the spoken
    language) and ``speakers`` on either."""
    try:
        speakers = parse_speakers(speakers)
    except ValueError as exc:
        raise PipelineError(f"--speakers {speakers}: {exc}") from None
    try:
        if segments is not None:
            return SegmentationSpec.parse(segments, speakers=speakers, **limits)
        return replace(recipe.prediction_segmentation(), speakers=speakers, **limits)
    except ValueError as exc:
        given = segments if segments is not None else "(the model's)"
        raise PipelineError(f"--segments {given}: {exc}") from exc


# --- predicting -------------------------------------------------------------------------------


class Predictor:
    """A loaded model with its featurizers, reused across calls (so later clips are warm).

    ``segments``: how recordings are cut (``SegmentationSpec.parse`` values: auto, transcript,
    asr, vad, fixed:SECONDS, none); None: as the model's training data was cut (its recipe's
    segmentation; auto for whole clips or labelled intervals). ``min_segment``/``max_segment``
    (seconds) apply to either. ``speakers``: auto, none or a count: the recording is diarized
    and cut where the speaker changes (``featurizers.speakers``), each segment with its speaker.
    ``language`` forces the spoken language (else it is detected per segment); ``translate``
    recognises speech as its English translation. Both apply to speech recognition only.
    """

    def __init__(
        self,
        model_dir: str | Path,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
        segments: str | None = None,
        min_segment: float | None = None,
        max_segment: float | None = None,
        speakers: str = "auto",
        language: str | None = None,
        translate: bool = False,
        face: str = AUTO,
    ) -> None:
        self.model_dir = Path(model_dir)
        try:
            face_mode = parse_face(face)
        except ValueError as exc:
            raise PipelineError(str(exc)) from exc
        limits = {
            k: v for k, v in (("min_len", min_segment), ("max_len", max_segment)) if v is not None
        }
        self.model, self.info = load_model(self.model_dir, device=device)
        self.device = torch.device(device)
        self.recipe = model_recipe(self.info.feature_spec, self.model_dir)
        # the spoken language is the recording's, never the training data's: None detects it
        limits = {**limits, "language": language}
        self.segmentation = _segmentation(segments, limits, self.recipe, speakers)
        self.featurizers = rebuild_featurizers(self.recipe, self.model_dir)
        if hasattr(self.featurizers.get("visual"), "face"):
            self.featurizers["visual"].face = face_mode  # type: ignore[attr-defined]
        self.settings = self.recipe.alignment
        # speech recognition options for the text featurizer, those set only
        self._speech = {
            k: v for k, v in (("speech_language", language), ("translate", translate)) if v
        }
        if self._speech:
            try:
                self.featurizers["text"] = self._text_variant()
            except ValueError as exc:  # an unknown language code
                raise PipelineError(f"--language {language}: {exc}") from None
        self.store = FeatureStore(cache_dir if cache_dir is not None else default_cache_dir())
        self._transcript_featurizers: dict[Path, Featurizer] = {}

    @property
    def label_names(self) -> list[str]:
        return list(self.info.label_names)

    def predict(
        self,
        inputs: Sequence[str | Path],
        transcript: str | Path | None = None,
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
                    results.append(self._predict_clip(clip, text, transcript))
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
            self._transcript_featurizers[path] = self._text_variant(transcript=path)
        return self._transcript_featurizers[path]

    def _text_variant(self, **changes: Any) -> Featurizer:
        """The model's text featurizer with this run's speech options and ``changes``."""
        saved = self.recipe.specs["text"]
        entry = registration(saved.name)
        return entry.create(**{**entry.settings_of(saved), **self._speech, **changes})

    def _predict_clip(
        self, clip: OpenedClip, text: Featurizer, transcript: str | Path | None
    ) -> ClipPrediction:
        from featurizers.media import MediaClip
        from featurizers.words import words_source

        featurizers = {**self.featurizers, "text": text}
        given = None if transcript is None else Path(transcript)
        try:
            media = MediaClip(clip.path)
            spans = featurize.plan(self.store, clip, self.segmentation, media, given).spans
            spans = featurize.assign_faces(self.store, clip, media, spans, featurizers)
        except (MediaError, featurize.FaceOptionError) as exc:
            return ClipPrediction(
                clip.clip_id, clip.source, error=featurize.readable(str(exc), clip)
            )
        results: list[SegmentResult] = []
        all_cached = True
        for first in range(0, len(spans), SEGMENT_BATCH):
            ready: list[tuple[int, Span, dict[str, FeatureSequence]]] = []
            for index, span in enumerate(spans[first : first + SEGMENT_BATCH], first):
                found = featurize.features(media, span, clip, featurizers, self.store)
                error = next((f.error for f in found.values() if f.error is not None), None)
                if error is not None:
                    results.append(_unpredictable(index, span, error))
                    all_cached = False
                    continue
                all_cached = all_cached and all(f.cached for f in found.values())
                ready.append((index, span, {m: f.sequence for m, f in found.items()}))
            results.extend(self._score(ready))
        source = words_source(clip.path, given)
        timeline = Timeline(
            source=clip.source,
            media_path=str(clip.path) if clip.path == Path(clip.source) else None,
            duration=media.info.duration,
            label_names=self.label_names,
            threshold=self.info.threshold,
            segmentation=_segmentation_name(self.segmentation, spans),
            segments=sorted(results, key=lambda r: r.index),
            notes=_speaker_notes(self.segmentation, spans),
            language=_main_language(results),
            orientation=media.info.orientation if media.info.has_video else None,
            readable=media.info.readable,
        )
        return ClipPrediction(
            clip_id=clip.clip_id,
            source=clip.source,
            timeline=timeline,
            transcript=None if source is None else featurize.readable(str(source), clip),
            cached=all_cached,
        )

    @torch.no_grad()
    def _score(
        self, ready: Sequence[tuple[int, Span, dict[str, FeatureSequence]]]
    ) -> list[SegmentResult]:
        """One batch through the model with each segment's real modalities, plus attribution."""
        if not ready:
            return []
        features, masks, present, missing = model_inputs([r[2] for r in ready], self.settings)
        batch = Batch(
            features={m: torch.from_numpy(features[m]).float().to(self.device) for m in MODALITIES},
            masks={m: torch.from_numpy(masks[m]).long().to(self.device) for m in MODALITIES},
            present=torch.from_numpy(present).to(self.device),
        )
        attribution = shapley(self.model, batch)
        scores = attribution.scores.cpu().numpy()
        contributions = attribution.contributions.cpu().numpy()
        driven = attribution.driven_by().cpu().numpy()
        winners = attribution.maxpool_winner.cpu().numpy()
        results = []
        for row, (index, span, sequences) in enumerate(ready):
            words = [w for w in (sequences["text"].words or []) if w]
            have = [m for m in MODALITIES if m not in missing[row]]
            if not have:
                why = ", ".join(missing[row][m] for m in MODALITIES)
                results.append(
                    _unpredictable(
                        index, span, f"no modality to predict from ({why})", missing[row]
                    )
                )
                continue
            labels = [
                LabelScore(
                    label=name,
                    probability=float(scores[row, c]),
                    predicted=bool(scores[row, c] >= self.info.threshold),
                    contributions={
                        m: float(contributions[row, c, k]) for k, m in enumerate(MODALITIES)
                    },
                    driven_by=None if driven[row, c] < 0 else MODALITIES[int(driven[row, c])],
                    maxpool_winner=MODALITIES[int(winners[row, c])],
                )
                for c, name in enumerate(self.info.label_names)
            ]
            language = sequences["text"].language
            results.append(
                SegmentResult.of(index, span, words, labels, have, missing[row], language=language)
            )
        return results


def _main_language(results: Sequence[SegmentResult]) -> str | None:
    """The language spoken longest over the segments (None when none was detected)."""
    spoken: dict[str, float] = {}
    for r in results:
        if r.language:
            spoken[r.language] = spoken.get(r.language, 0.0) + r.end - r.start
    return max(spoken, key=spoken.__getitem__) if spoken else None


def _unpredictable(
    index: int, span: Span, reason: str, missing: dict[str, str] | None = None
) -> SegmentResult:
    return SegmentResult.of(index, span, [], [], [], dict(missing or {}), error=reason)


def _speaker_notes(spec: SegmentationSpec, spans: Sequence[Span]) -> list[str]:
    """A line when fewer voices were heard than ``--speakers N`` asked for."""
    found = len({s.speaker for s in spans if s.speaker is not None})
    if not spec.speakers.isdigit() or found >= int(spec.speakers):
        return []
    return [
        f"--speakers {spec.speakers}: {found} distinct voice{'s' if found != 1 else ''} heard; "
        "the result has the speakers found"
    ]


def _segmentation_name(spec: SegmentationSpec, spans: Sequence[Span]) -> str:
    """What cut the recording: the source of its spans (``fixed:10`` with its window)."""
    sources = sorted({s.source for s in spans})
    if sources == ["fixed"] and spec.window:
        return f"fixed:{spec.window:g}"
    return "+".join(sources) or "none"


def predict_clips(
    paths: Sequence[str | Path],
    model_dir: str | Path,
    transcript: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    segments: str | None = None,
    min_segment: float | None = None,
    max_segment: float | None = None,
    speakers: str = "auto",
    language: str | None = None,
    translate: bool = False,
    face: str = AUTO,
) -> list[ClipPrediction]:
    """Load the model in ``model_dir`` and predict every clip of ``paths`` (see Predictor)."""
    predictor = Predictor(
        model_dir,
        cache_dir,
        segments=segments,
        min_segment=min_segment,
        max_segment=max_segment,
        speakers=speakers,
        language=language,
        translate=translate,
        face=face,
    )
    return predictor.predict(paths, transcript=transcript, progress=progress)

"""In-memory dataset types shared by every adapter, the trainer and the pipeline.

All adapters (benchmark files, our packed Arrow datasets, synthetic data) return a
:class:`MultimodalDataset`; the trainer only ever sees this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES: tuple[str, str, str] = ("text", "visual", "audio")
SPLITS: tuple[str, str, str] = ("train", "valid", "test")


@dataclass
class SplitData:
    """One split. Arrays are padded to a fixed length per modality.

    ``masks[m]`` is 1 for real steps and 0 for padding (int64 ``[N, L_m]``).
    ``labels`` is float32 ``[N, C]`` with values in {0, 1}.
    """

    features: dict[str, np.ndarray]  # modality -> float32 [N, L_m, D_m]
    masks: dict[str, np.ndarray]  # modality -> int64 [N, L_m]
    labels: np.ndarray  # float32 [N, C]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in MODALITIES:
            if len(self.features[name]) != n or len(self.masks[name]) != n:
                raise ValueError(
                    f"split has {n} labels but {len(self.features[name])} {name} rows "
                    f"and {len(self.masks[name])} {name} masks"
                )
        if len(self.ids) != n:
            raise ValueError(f"split has {n} labels but {len(self.ids)} ids")


@dataclass
class MultimodalDataset:
    """A whole benchmark or user dataset: three splits plus what describes them."""

    name: str
    splits: dict[str, SplitData]
    label_names: list[str]
    aligned: bool = True
    feature_spec: dict[str, Any] | None = (
        None  # modality -> FeaturizerSpec.to_dict(), if built by us
    )
    source: str = ""  # the file or folder it came from

    @property
    def dims(self) -> dict[str, int]:
        train = self.splits["train"]
        return {m: int(train.features[m].shape[-1]) for m in MODALITIES}

    @property
    def lengths(self) -> dict[str, int]:
        train = self.splits["train"]
        return {m: int(train.features[m].shape[1]) for m in MODALITIES}

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


@dataclass
class Batch:
    """What the model consumes; tensors live on one device."""

    features: dict[str, Any] = field(default_factory=dict)  # modality -> float [B, L, D]
    masks: dict[str, Any] = field(default_factory=dict)  # modality -> int64 [B, L]
    labels: Any = None  # float [B, C]
    # bool [B, 3] in MODALITIES order: which modalities each sample has; None = all of them
    # (or, with model.mask_padding, those whose mask has a real step)
    present: Any = None

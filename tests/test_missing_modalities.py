"""The masked path for absent modalities, modality dropout, and exact Shapley attribution."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
from model_fixtures import B, random_batch, tiny_config

from carat.attribution import SUBSETS, shapley
from carat.config import ConfigError
from carat.data.types import MODALITIES
from carat.model import CARAT


def trained_a_little(rate: float = 0.5, steps: int = 3, **ablation: bool) -> CARAT:
    """A tiny CARAT after a few training steps, so prototypes and queue are not at their init."""
    torch.manual_seed(0)
    cfg = tiny_config(**ablation)
    cfg.model.modality_dropout = rate
    model = CARAT(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(steps):
        loss, _ = model.training_step(random_batch(seed=step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def with_presence(batch, present):  # noqa: ANN001, ANN201
    return replace(batch, present=torch.tensor(present, dtype=torch.bool))


@pytest.mark.parametrize(
    "ablation", [{}, {"first_level": False}, {"second_level": False}, {"mrm": False}]
)
def test_an_absent_modality_is_never_read(ablation: dict[str, bool]) -> None:
    model = trained_a_little(**ablation)
    batch = random_batch(seed=5)
    present = [[True, False, True]] * B
    before = model(with_presence(batch, present)).scores
    noisy = replace(
        batch,
        features={**batch.features, "visual": 100 * torch.randn_like(batch.features["visual"])},
    )
    after = model(with_presence(noisy, present)).scores
    assert torch.isfinite(before).all()
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    # and it does change the prediction when present: the path is not trivially constant
    assert not torch.allclose(model(batch).scores, model(noisy).scores)


def test_max_pool_winner_is_a_present_modality() -> None:
    model = trained_a_little()
    out = model(with_presence(random_batch(seed=6), [[False, True, True]] * B))
    assert (out.winner != MODALITIES.index("text")).all()


def test_all_present_flags_equal_no_flags() -> None:
    model = trained_a_little()
    batch = random_batch(seed=7)
    torch.testing.assert_close(
        model(batch).scores, model(with_presence(batch, [[True] * 3] * B)).scores
    )


def test_no_modality_gives_one_data_free_prior() -> None:
    model = trained_a_little()
    none = [[False] * 3] * B
    a = model(with_presence(random_batch(seed=1), none)).scores
    b = model(with_presence(random_batch(seed=2), none)).scores
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # identical rows whatever the input
    torch.testing.assert_close(a, a[:1].expand_as(a))


def test_an_empty_mask_means_absent_with_mask_padding() -> None:
    model = trained_a_little()
    model.cfg.model.mask_padding = True
    batch = random_batch(seed=3)
    masks = {**batch.masks, "audio": torch.zeros_like(batch.masks["audio"])}
    by_mask = model(replace(batch, masks=masks)).scores
    by_flag = model(with_presence(replace(batch, masks=masks), [[True, True, False]] * B)).scores
    torch.testing.assert_close(by_mask, by_flag)


def test_modality_dropout_masks_samples_and_keeps_losses_finite() -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.model.modality_dropout = 0.5
    model = CARAT(cfg)
    batch = random_batch()
    present = model.drop_modalities(batch)
    assert present.shape == (B, 3) and present.dtype == torch.bool
    loss, terms = model.training_step(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
    loss.backward()


def test_absent_samples_leave_their_prototypes_alone() -> None:
    model = CARAT(tiny_config())
    batch = with_presence(random_batch(), [[True, False, True]] * B)
    model.training_step(batch)
    visual = MODALITIES.index("visual")
    assert torch.count_nonzero(model.prototypes.pos[visual]) == 0
    assert torch.count_nonzero(model.prototypes.neg[visual]) == 0
    assert torch.count_nonzero(model.prototypes.pos[0]) > 0


def test_modality_dropout_rate_is_checked() -> None:
    cfg = tiny_config()
    cfg.model.modality_dropout = 1.0
    with pytest.raises(ConfigError, match="modality_dropout"):
        CARAT(cfg)


def brute_force_shapley(model: CARAT, batch) -> torch.Tensor:  # noqa: ANN001
    """The textbook formula, one model call per subset."""
    n = len(MODALITIES)

    def value(subset: tuple[int, ...]) -> torch.Tensor:
        flags = [[i in subset for i in range(n)]] * B
        return model(with_presence(batch, flags)).scores.double()

    phi = torch.zeros(B, model.cfg.model.num_labels, n, dtype=torch.float64)
    for i in range(n):
        others = [k for k in range(n) if k != i]
        for size in range(n):
            for subset in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi[..., i] += w * (value(tuple(sorted(subset + (i,)))) - value(subset))
    return phi


def test_shapley_equals_the_textbook_formula_and_adds_up() -> None:
    model = trained_a_little()
    batch = random_batch(seed=9)
    attribution = shapley(model, batch)
    expected = brute_force_shapley(model, batch)
    torch.testing.assert_close(attribution.contributions.double(), expected, atol=1e-5, rtol=0)
    total = attribution.contributions.sum(-1)
    torch.testing.assert_close(total, attribution.scores - attribution.prior, atol=1e-5, rtol=0)
    torch.testing.assert_close(attribution.scores, model(batch).scores, atol=1e-5, rtol=0)
    assert SUBSETS.shape == (8, 3)


def test_an_input_absent_modality_contributes_nothing() -> None:
    model = trained_a_little()
    attribution = shapley(model, with_presence(random_batch(seed=4), [[True, True, False]] * B))
    assert torch.count_nonzero(attribution.contributions[..., 2]) == 0
    driven = attribution.driven_by()
    assert ((driven == -1) | (driven != 2)).all()

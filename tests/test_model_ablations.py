"""Every Table 3 ablation builds, trains one step and changes what its name says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import B, C, random_batch, tiny_config, torch_threads

from carat.config import ConfigError
from carat.model import CARAT

NO_RECONSTRUCTION = {"first_level": False, "second_level": False}
BARE = {  # Appendix C.1: no reconstruction, no contrastive learning, no shuffling
    **NO_RECONSTRUCTION,
    "contrastive": False,
    "encoder_decoder": False,
    "sample_shuffle": False,
    "modality_shuffle": False,
}
ALL_CLF = {"lsr_clf", "aug_clf", "srr_clf"}
ALL_MSE = {"recon_mse", "aug_mse", "beta_mse"}

# Table 3 row -> (switches, the loss terms that must remain)
VARIANTS = {
    "full": ({}, ALL_CLF | ALL_MSE | {"contrastive", "agg", "shuffle"}),
    "mrm_agg": (BARE, {"srr_clf", "agg"}),
    "mrm_only": ({**BARE, "agg": False}, {"srr_clf"}),
    "agg_only": ({**BARE, "mrm": False}, {"agg"}),
    "no_contrastive": ({"contrastive": False}, ALL_CLF | ALL_MSE | {"agg", "shuffle"}),
    "no_encoder_decoder": (
        {"encoder_decoder": False, "contrastive": False},
        ALL_CLF | {"aug_mse", "beta_mse", "agg", "shuffle"},
    ),
    "no_reconstruction_loss": (
        {"reconstruction_loss": False},
        ALL_CLF | {"contrastive", "agg", "shuffle"},
    ),
    "no_first_level": (
        {"first_level": False},
        {"lsr_clf", "srr_clf", "recon_mse", "beta_mse", "contrastive", "agg", "shuffle"},
    ),
    "no_second_level": (
        {"second_level": False},
        {"lsr_clf", "srr_clf", "recon_mse", "aug_mse", "contrastive", "agg", "shuffle"},
    ),
    "no_reconstruction": (
        NO_RECONSTRUCTION,
        {"srr_clf", "recon_mse", "contrastive", "agg", "shuffle"},
    ),
    "no_sample_shuffle": (
        {"sample_shuffle": False},
        ALL_CLF | ALL_MSE | {"contrastive", "agg", "shuffle"},
    ),
    "no_modality_shuffle": (
        {"modality_shuffle": False},
        ALL_CLF | ALL_MSE | {"contrastive", "agg", "shuffle"},
    ),
    "no_shuffle": (
        {"sample_shuffle": False, "modality_shuffle": False},
        ALL_CLF | ALL_MSE | {"contrastive", "agg"},
    ),
}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_builds_and_trains_one_step(name):
    switches, expected_terms = VARIANTS[name]
    torch.manual_seed(0)
    model = CARAT(tiny_config(**switches)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    loss, terms = model.training_step(random_batch())
    assert set(terms) - {"total"} == expected_terms
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    moved = {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}
    assert "encoders.text.input_proj.weight" in moved
    assert ("classifiers.0" in moved) == ("srr_clf" in expected_terms)
    model.eval()
    with torch.no_grad():
        out = model(random_batch(seed=1))
    assert out.scores.shape == (B, C)
    assert torch.all((out.scores >= 0) & (out.scores <= 1))


def test_mrm_and_agg_cannot_both_be_off():
    with pytest.raises(ConfigError, match="mrm and agg"):
        CARAT(tiny_config(mrm=False, agg=False))


def test_prediction_uses_only_the_heads_that_are_on():
    torch.manual_seed(0)
    batch = random_batch()
    for switches, expect in (({"agg": False}, "clf"), ({"mrm": False}, "agg")):
        model = CARAT(tiny_config(**switches)).eval()
        with torch.no_grad():
            inter = model.encode(batch)
            scores = model.predict_from(inter).scores
        if expect == "clf":
            assert inter.agg_logits is None and not hasattr(model, "aggregator")
            want = torch.sigmoid(inter.level_logits["srr"].max(dim=-1).values)
        else:
            want = torch.sigmoid(inter.agg_logits).mean(dim=1)
        torch.testing.assert_close(scores, want)


def test_reconstruction_levels_are_rewired_when_removed():
    torch.manual_seed(0)
    batch = random_batch()
    no_first = CARAT(tiny_config(first_level=False)).eval()
    with torch.no_grad():
        inter = no_first.encode(batch)
    assert inter.frr is None and inter.intrinsic is None
    assert not hasattr(no_first, "prototypes")  # they only feed the first level
    joined = inter.lsr.permute(0, 2, 1, 3).flatten(2)
    torch.testing.assert_close(inter.srr[:, 1], no_first.reconstructors[1](joined))

    no_second = CARAT(tiny_config(second_level=False)).eval()
    with torch.no_grad():
        inter = no_second.encode(batch)
    assert inter.srr is None and inter.final is inter.frr
    assert set(inter.level_logits) == {"lsr", "frr"}

    none = CARAT(tiny_config(**NO_RECONSTRUCTION)).eval()
    with torch.no_grad():
        inter = none.encode(batch)
    assert inter.final is inter.lsr and not hasattr(none, "reconstructors")


def test_without_encoder_decoder_the_latent_is_the_label_feature():
    torch.manual_seed(0)
    model = CARAT(tiny_config(encoder_decoder=False)).train()
    inter = model.encode(random_batch())
    assert torch.equal(inter.latent, inter.lsr) and torch.equal(inter.recon, inter.lsr)
    assert model.prototypes.pos.shape == (3, C, 16) and model.queue.features.shape[1] == 16
    _, embeddings, _ = model.loss_terms(inter, random_batch().labels)
    assert embeddings.shape == (B * 9 * C, 16)


@pytest.mark.parametrize(("sample", "modality"), [(False, True), (True, False), (True, True)])
def test_shuffle_switches_fix_their_own_index(sample, modality):
    torch.manual_seed(0)
    model = CARAT(tiny_config(sample_shuffle=sample, modality_shuffle=modality))
    model.rng = np.random.default_rng(0)
    # encode which (sample, modality, label) each slot came from in the vector itself
    x = torch.zeros(B, 3, C, 3)
    x[..., 0] = torch.arange(B)[:, None, None]
    x[..., 1] = torch.arange(3)[None, :, None]
    x[..., 2] = torch.arange(C)[None, None, :]
    labels = torch.rand(B, C)
    out, targets, _ = model.shuffle(x, labels)
    src_b, src_m, src_l = out[..., 0].long(), out[..., 1].long(), out[..., 2].long()
    assert torch.equal(src_l, x[..., 2].long())  # labels never move
    assert (
        torch.equal(src_b == x[..., 0].long(), torch.ones_like(src_b, dtype=torch.bool)) != sample
    )
    assert (
        torch.equal(src_m == x[..., 1].long(), torch.ones_like(src_m, dtype=torch.bool)) != modality
    )
    torch.testing.assert_close(targets, labels[src_b, src_l])
    # each (label, modality slot) column draws a permutation of the batch
    for c in range(C):
        for m in range(3):
            assert sorted(src_b[:, m, c].tolist()) == list(range(B))
        for b in range(B):
            assert sorted(src_m[b, :, c].tolist()) == [0, 1, 2]

"""CARAT's loss terms against direct, slow formulas on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_fixtures import B, C, random_batch, tiny_config, torch_threads

from carat.contrastive import supcon_loss
from carat.data.types import Batch
from carat.model import CARAT


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def slow_supcon(feats, ids, queue, queue_ids, tau, base_tau, queue_anchors):
    """Eq. 6-7 anchor by anchor, as the authors' code computes it (row max, 1e-12s)."""
    pool = torch.cat([feats, queue.detach()])
    pool_ids = torch.cat([ids, queue_ids]).tolist()
    n = len(pool_ids)
    anchors = n if queue_anchors else len(ids)
    losses = []
    for i in range(anchors):
        logits = pool[i] @ pool.T / tau
        logits = logits - logits.max().detach()
        others = [k for k in range(n) if k != i]
        log_denom = torch.log(torch.exp(logits[others]).sum() + 1e-12)
        positives = [k for k in others if pool_ids[k] == pool_ids[i]]
        total = sum((logits[k] - log_denom for k in positives), torch.zeros(()))
        losses.append(-(tau / base_tau) * total / (len(positives) + 1e-12))
    return torch.stack(losses).mean()


def contrastive_case(seed, n=14, q=9, d=5):
    gen = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    ids = torch.randint(0, 4, (n,), generator=gen).double()
    ids[-1] = 17.0  # a batch vector whose class appears nowhere else: no positives
    queue = F.normalize(torch.randn(q, d, generator=gen, dtype=torch.float64), dim=0)
    queue_ids = torch.randint(0, 4, (q,), generator=gen).double()
    queue_ids[:3] = torch.randn(3, generator=gen, dtype=torch.float64)  # init-style float ids
    return feats, ids, queue, queue_ids


@pytest.mark.parametrize("queue_anchors", [True, False])
@pytest.mark.parametrize("chunk", [4, 1024])
def test_supcon_matches_slow_formula_value_and_gradient(queue_anchors, chunk):
    feats, ids, queue, queue_ids = contrastive_case(0)
    want_in = feats.clone().requires_grad_(True)
    want = slow_supcon(want_in, ids, queue, queue_ids, 0.07, 0.07, queue_anchors)
    want.backward()
    got_in = feats.float().clone().requires_grad_(True)
    got = supcon_loss(got_in, ids, queue.float(), queue_ids, 0.07, 0.07, queue_anchors, chunk)
    got.backward()
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_in.grad.double(), want_in.grad, rtol=1e-3, atol=1e-5)


def test_supcon_scales_with_temperature_ratio_and_counts_lonely_anchors_as_zero():
    feats, ids, queue, queue_ids = contrastive_case(1)
    ids = torch.arange(len(ids)).double() + 100  # nobody has a positive
    queue_ids = torch.randn(len(queue_ids), dtype=torch.float64)
    assert supcon_loss(feats.float(), ids, queue.float(), queue_ids).item() == 0.0
    feats, ids, queue, queue_ids = contrastive_case(2)
    base = supcon_loss(feats.float(), ids, queue.float(), queue_ids, 0.1, 0.1)
    half = supcon_loss(feats.float(), ids, queue.float(), queue_ids, 0.1, 0.2)
    torch.testing.assert_close(half, base / 2)


def test_supcon_mean_is_over_all_rows_when_queue_rows_are_anchors():
    # one positive pair in the batch; the 9 queue rows have no positives
    feats, _, queue, _ = contrastive_case(3, n=2)
    ids = torch.tensor([0.0, 0.0], dtype=torch.float64)
    queue_ids = torch.randn(9, dtype=torch.float64)
    over_all = supcon_loss(feats.float(), ids, queue.float(), queue_ids, queue_anchors=True)
    over_batch = supcon_loss(feats.float(), ids, queue.float(), queue_ids, queue_anchors=False)
    torch.testing.assert_close(over_all * 11, over_batch * 2)


def test_classifier_reconstruction_and_aggregation_terms_match_direct_formulas():
    torch.manual_seed(0)
    model = CARAT(tiny_config()).train()
    batch = random_batch()
    y = batch.labels
    inter = model.encode(batch)
    state = np.random.default_rng(7)
    model.rng = np.random.default_rng(7)
    terms, embeddings, ids = model.loss_terms(inter, y)

    def bce(logit, target):
        p = torch.sigmoid(logit)
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

    def mse_sum(x):
        return sum(((x[:, m] - inter.lsr[:, m]) ** 2).mean() for m in range(3))

    for term, level in (("lsr_clf", "lsr"), ("aug_clf", "frr"), ("srr_clf", "srr")):
        x = getattr(inter, level)
        logit = torch.stack(
            [
                torch.stack(
                    [max(x[b, m, c] @ model.classifiers[m][c] for m in range(3)) for c in range(C)]
                )
                for b in range(B)
            ]
        )
        torch.testing.assert_close(terms[term], bce(logit, y), msg=term)
    torch.testing.assert_close(terms["recon_mse"], mse_sum(inter.recon))
    torch.testing.assert_close(terms["aug_mse"], mse_sum(inter.frr))
    torch.testing.assert_close(terms["beta_mse"], mse_sum(inter.srr))
    agg = model.aggregator(inter.srr.reshape(B, 3, -1))
    torch.testing.assert_close(terms["agg"], bce(agg, y[:, None, :].expand(B, 3, C)))

    # the shuffled copy, rebuilt slot by slot from the same generator draws
    sample = state.permuted(np.broadcast_to(np.arange(B), (C, 3, B)), axis=-1)  # [l,m] -> perm
    modality = state.permuted(np.broadcast_to(np.arange(3), (C, B, 3)), axis=-1)  # [l,b] -> perm
    rows, targets = [], []
    for b in range(B):
        for m in range(3):
            for c in range(C):
                src_b, src_m = sample[c, m, b], modality[c, b, m]
                rows.append(inter.srr[src_b, src_m, c])
                targets.append(y[src_b, c])
    shuffled = torch.stack(rows).view(B, 3, C, -1)
    want = bce(model.aggregator(shuffled.reshape(B, 3, -1)), torch.stack(targets).view(B, 3, C))
    torch.testing.assert_close(terms["shuffle"], want)

    # contrastive: the nine latent sets with class ids j + C * (2m + negative)
    latents = [inter.latent] + [
        torch.stack([model.latent_encoders[m](x[:, m]) for m in range(3)], dim=1)
        for x in (inter.frr, inter.srr)
    ]
    want_feats, want_ids = [], []
    for b in range(B):
        for level in range(3):
            for m in range(3):
                for c in range(C):
                    want_feats.append(F.normalize(latents[level][b, m, c], dim=0))
                    want_ids.append(c + C * (2 * m + (0 if y[b, c] >= 0.5 else 1)))
    torch.testing.assert_close(embeddings, torch.stack(want_feats))
    assert ids.tolist() == want_ids
    torch.testing.assert_close(terms["contrastive"], model.queue(embeddings, ids))


def test_total_is_the_weighted_sum_and_state_updates_after_the_loss():
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.contrastive.queue_size = 200
    cfg.model.loss.recon_mse = 0.5
    model = CARAT(cfg).train()
    batch = random_batch()
    queue_before = model.queue.features.clone()
    total, terms = model.training_step(batch)
    weights = model.cfg.model.loss
    expected = sum(getattr(weights, k) * v for k, v in terms.items() if k != "total")
    torch.testing.assert_close(total.detach(), expected)
    torch.testing.assert_close(terms["total"], expected)
    assert set(terms) == {
        "lsr_clf", "aug_clf", "srr_clf", "contrastive", "recon_mse",
        "aug_mse", "beta_mse", "agg", "shuffle", "total",
    }  # fmt: skip
    assert model.prototypes.pos.abs().sum() > 0 and model.prototypes.neg.abs().sum() > 0
    n_new = B * 9 * C
    assert not torch.equal(model.queue.features[:n_new], queue_before[:n_new])
    torch.testing.assert_close(model.queue.features[n_new:], queue_before[n_new:])
    assert int(model.queue.pointer) == n_new
    total.backward()
    assert model.encoders["text"].input_proj.weight.grad.abs().sum() > 0


def test_a_few_steps_learn_a_planted_label():
    """Label 0 is carried by one text feature; the loss drops and eval predicts label 0."""
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.model.dropout = cfg.model.attention_dropout = 0.0
    model = CARAT(cfg).train()
    gen = torch.Generator().manual_seed(0)
    n = 32
    labels = (torch.rand(n, C, generator=gen) < 0.5).float()
    features = {
        "text": torch.randn(n, 5, 7, generator=gen),
        "visual": torch.randn(n, 5, 5, generator=gen),
        "audio": torch.randn(n, 5, 4, generator=gen),
    }
    features["text"][..., 0] += 3.0 * (2 * labels[:, None, 0] - 1)
    batch = Batch(features=features, masks={}, labels=labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    totals = []
    for _ in range(30):
        loss, terms = model.training_step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(terms["total"].item())
    assert totals[-1] < 0.7 * totals[0]
    model.eval()
    with torch.no_grad():
        scores = model(batch).scores
    predicted = (scores[:, 0] > 0.5).float()
    assert (predicted == labels[:, 0]).float().mean() > 0.9

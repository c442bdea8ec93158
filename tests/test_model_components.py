"""CARAT components: shapes, initialisation, masks, prototypes, intrinsic vectors, prediction."""

from __future__ import annotations

import math

import pytest
import torch
from model_fixtures import DIMS, B, C, random_batch, tiny_config, torch_threads
from torch import nn

from carat.config import CaratConfig
from carat.contrastive import SupConQueue
from carat.errors import DataError
from carat.model import CARAT, count_parameters
from carat.modules import MLP, Dropout, SoftResampler, TransformerEncoder
from carat.prototypes import PrototypeBank


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_every_intermediate_has_its_shape():
    torch.manual_seed(0)
    model = CARAT(tiny_config()).train()
    inter = model.encode(random_batch())
    d, dz = 16, 8
    for name in ("lsr", "recon", "intrinsic", "frr", "srr", "final"):
        assert getattr(inter, name).shape == (B, 3, C, d), name
    assert inter.latent.shape == (B, 3, C, dz)
    assert set(inter.level_logits) == {"lsr", "frr", "srr"}
    for logits in inter.level_logits.values():
        assert logits.shape == (B, C, 3)
    assert inter.agg_logits.shape == (B, 3, C)
    embeddings, ids = model.contrastive_inputs(inter, random_batch().labels)
    assert embeddings.shape == (B * 9 * C, dz) and ids.shape == (B * 9 * C,)
    out = model(random_batch())
    assert out.scores.shape == (B, C) and out.winner.shape == (B, C)
    assert out.modality_logits.shape == (B, C, 3) and out.winner.dtype == torch.long


def test_encoder_maps_steps_to_hidden_and_refuses_too_long_input():
    enc = TransformerEncoder(7, 8, 2, 16, 2, 16, 0.1, 0.1)
    assert enc(torch.randn(3, 5, 7)).shape == (3, 5, 16)
    with pytest.raises(ValueError, match="max_positions"):
        enc(torch.randn(3, 9, 7))


def test_checkpointed_encoder_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    plain = TransformerEncoder(7, 8, 2, 16, 2, 16, 0.3, 0.3).train()
    recomputed = TransformerEncoder(7, 8, 2, 16, 2, 16, 0.3, 0.3, checkpoint_min_len=4).train()
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, 7)
    outs, grads = [], []
    for enc in (plain, recomputed):
        torch.manual_seed(5)  # same dropout draws
        out = enc(x)
        out.pow(2).sum().backward()
        outs.append(out)
        grads.append(enc.input_proj.weight.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_unaligned_resampler_maps_input_length_to_out_len():
    resampler = SoftResampler(5, out_len=6)
    x = torch.randn(2, 11, 5)
    assert resampler(x).shape == (2, 6, 5)
    model = CARAT(tiny_config(aligned=False)).eval()
    inter = model.encode(random_batch(length=7))  # visual/audio 7 steps in, 6 out
    assert inter.lsr.shape == (B, 3, C, 16)
    assert set(model.resamplers) == {"visual", "audio"}


def test_resampler_ignores_masked_trailing_steps():
    resampler = SoftResampler(5, out_len=6)
    x = torch.randn(2, 8, 5)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[:, 6:] = 0
    changed = x.clone()
    changed[:, 6:] = 100.0
    torch.testing.assert_close(resampler(x, mask), resampler(changed, mask))
    assert not torch.allclose(resampler(x), resampler(changed))


@pytest.mark.parametrize("mask_padding", [True, False])
def test_mask_padding_switch_decides_whether_padding_is_read(mask_padding):
    cfg = tiny_config()
    cfg.model.mask_padding = mask_padding
    model = CARAT(cfg).eval()
    batch = random_batch()
    for m in DIMS:
        batch.masks[m][:, 3:] = 0
    padded = random_batch()
    padded.masks = batch.masks
    for m in DIMS:
        padded.features[m][:, 3:] = 50.0  # change only the padded steps
    with torch.no_grad():
        same = torch.allclose(model.encode(batch).lsr, model.encode(padded).lsr, atol=1e-5)
    assert same is mask_padding


def test_initialisation_follows_the_authors_rules():
    torch.manual_seed(0)
    model = CARAT(CaratConfig())
    text = model.encoders["text"]
    for layer in text.layers:
        for linear in (layer.qkv, layer.attention_out, layer.ffn_in, layer.ffn_out):
            assert abs(linear.weight.std().item() - 0.02) < 0.002
            assert torch.all(linear.bias == 0)
        assert torch.all(layer.attention_norm.weight == 1) and torch.all(layer.ffn_norm.bias == 0)
    assert abs(text.positions.weight.std().item() - 0.02) < 0.002
    for norm in model.input_norms.values():
        assert norm.eps == 1e-12 and torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    # W_m: [C, d], no bias, kaiming-uniform(a=sqrt 5) => bound 1/sqrt(d)
    for weight in model.classifiers:
        assert weight.shape == (6, 256)
        assert weight.abs().max() <= 1 / math.sqrt(256)
    assert not any("bias" in name for name, _ in model.classifiers.named_parameters())
    for attention in model.label_attention:
        assert attention.scores.bias is None
        assert attention.scores.weight.abs().max() <= math.sqrt(6 / (256 + 6))
    first = model.latent_encoders[0].linears[0]
    assert first.weight.abs().max() <= math.sqrt(6 / (256 + 128))
    assert first.weight.std() > 0.5 * math.sqrt(2 / (256 + 128))  # xavier, not 0.02


def test_paper_parameter_count_is_the_authors_minus_their_unused_poolers():
    model = CARAT(CaratConfig())
    unused_pooler = 256 * 256 + 256  # the BERT tanh pooler, one per encoder, never read
    assert count_parameters(model) == 7_359_736 - 3 * unused_pooler


def test_mlp_has_relu_between_layers_only():
    mlp = MLP([4, 3, 2])
    assert [type(x) for x in mlp.linears] == [nn.Linear, nn.Linear]
    x = torch.randn(5, 4)
    expected = mlp.linears[1](torch.relu(mlp.linears[0](x)))
    torch.testing.assert_close(mlp(x), expected)


def sequential_prototype_update(pos, neg, z_hat, labels, momentum):
    """The authors' loop: samples in order, then labels; one EMA step each."""
    pos, neg = pos.clone(), neg.clone()
    for i in range(z_hat.shape[0]):
        for m in range(z_hat.shape[1]):
            for j in range(z_hat.shape[2]):
                bank = pos if labels[i, j] == 1 else neg
                bank[m, j] = momentum * bank[m, j] + (1 - momentum) * z_hat[i, m, j]
    return pos, neg


@pytest.mark.parametrize("momentum", [0.99, 0.7])
def test_vectorised_prototype_update_equals_sequential_loop(momentum):
    gen = torch.Generator().manual_seed(1)
    bank = PrototypeBank(3, 4, 6, momentum)
    bank.pos.copy_(torch.randn(3, 4, 6, generator=gen))
    bank.neg.copy_(torch.randn(3, 4, 6, generator=gen))
    for step in range(3):
        z_hat = nn.functional.normalize(torch.randn(9, 3, 4, 6, generator=gen), dim=-1)
        labels = (torch.rand(9, 4, generator=gen) < 0.5).float()
        labels[:, 0] = 1.0  # label 0: all 9 samples positive
        labels[:, 1] = 0.0  # label 1: all negative
        want_pos, want_neg = sequential_prototype_update(
            bank.pos, bank.neg, z_hat, labels, momentum
        )
        bank.update(z_hat, labels)
        torch.testing.assert_close(bank.pos, want_pos, atol=1e-6, rtol=0, msg=f"step {step}")
        torch.testing.assert_close(bank.neg, want_neg, atol=1e-6, rtol=0, msg=f"step {step}")


def test_intrinsic_vectors_soft_in_training_hard_in_eval():
    bank = PrototypeBank(1, 2, 2, 0.99)
    bank.pos.copy_(torch.tensor([[[1.0, 0.0], [0.0, 2.0]]]))
    bank.neg.copy_(torch.tensor([[[0.0, 1.0], [0.5, 0.0]]]))
    z_hat = torch.tensor([[[[0.6, 0.8], [1.0, 0.0]]]])  # [B=1, M=1, C=2, d=2]
    soft = bank.intrinsic(z_hat, hard=False)
    # label 0: sims (0.6, 0.8); label 1: sims (0.0, 0.5)
    w0 = torch.softmax(torch.tensor([0.6, 0.8]), 0)
    w1 = torch.softmax(torch.tensor([0.0, 0.5]), 0)
    torch.testing.assert_close(soft[0, 0, 0], w0[0] * bank.pos[0, 0] + w0[1] * bank.neg[0, 0])
    torch.testing.assert_close(soft[0, 0, 1], w1[0] * bank.pos[0, 1] + w1[1] * bank.neg[0, 1])
    hard = bank.intrinsic(z_hat, hard=True)
    torch.testing.assert_close(hard[0, 0, 0], bank.neg[0, 0])
    torch.testing.assert_close(hard[0, 0, 1], bank.neg[0, 1])
    z_pos = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    torch.testing.assert_close(bank.intrinsic(z_pos, hard=True)[0, 0], bank.pos[0])


def test_model_uses_soft_intrinsic_when_training_and_hard_when_evaluating():
    torch.manual_seed(0)
    model = CARAT(tiny_config())
    gen = torch.Generator().manual_seed(3)
    model.prototypes.pos.copy_(torch.randn(3, C, 8, generator=gen))
    model.prototypes.neg.copy_(torch.randn(3, C, 8, generator=gen))
    batch = random_batch()
    for training in (True, False):
        model.train(training)
        model.encoders.eval()  # no dropout, so both modes see the same latents
        with torch.no_grad():
            inter = model.encode(batch)
            z_hat = nn.functional.normalize(inter.latent, dim=-1)
            mix = model.prototypes.intrinsic(z_hat, hard=not training)
            decoded = torch.stack([model.latent_decoders[m](mix[:, m]) for m in range(3)], dim=1)
        torch.testing.assert_close(inter.intrinsic, decoded)
    hard = model.prototypes.intrinsic(z_hat, hard=True)
    soft = model.prototypes.intrinsic(z_hat, hard=False)
    assert not torch.allclose(hard, soft)


def test_prediction_rule_mixes_aggregation_and_max_pooled_classifier():
    torch.manual_seed(0)
    model = CARAT(tiny_config()).eval()
    with torch.no_grad():
        inter = model.encode(random_batch())
        out = model.predict_from(inter)
    srr_logits = inter.level_logits["srr"]
    expected = 0.5 * (
        torch.sigmoid(inter.agg_logits).mean(dim=1) + torch.sigmoid(srr_logits.max(dim=-1).values)
    )
    torch.testing.assert_close(out.scores, expected)
    torch.testing.assert_close(out.modality_logits, srr_logits)
    assert torch.equal(out.winner, srr_logits.argmax(dim=-1))
    # per-label logit = <x_m[b,c], W_m[c]>
    b, c, m = 1, 2, 0
    manual = inter.srr[b, m, c] @ model.classifiers[m][c]
    torch.testing.assert_close(srr_logits[b, c, m], manual)


def test_queue_is_fifo_and_wraps():
    queue = SupConQueue(5, 2, 0.07, 0.07, True)
    assert torch.allclose(queue.features.norm(dim=0), torch.ones(2))  # normalised per column
    assert not torch.any(queue.ids == queue.ids.round())  # float ids: never a class id
    queue.enqueue(torch.ones(3, 2), torch.tensor([1.0, 2.0, 3.0]))
    queue.enqueue(2 * torch.ones(4, 2), torch.tensor([4.0, 5.0, 6.0, 7.0]))
    assert queue.ids.tolist() == [6.0, 7.0, 3.0, 4.0, 5.0]
    assert queue.features[:, 0].tolist() == [2.0, 2.0, 1.0, 2.0, 2.0]
    assert int(queue.pointer) == 2


def test_state_buffers_are_saved_with_the_weights():
    model = CARAT(tiny_config())
    keys = set(model.state_dict())
    assert {"prototypes.pos", "prototypes.neg", "queue.features", "queue.ids"} <= keys


def test_cpu_dropout_keeps_one_minus_p_scaled_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(200_000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(drop.eval()(x), x)


def test_training_step_runs_under_bf16_autocast():
    """The CUDA recipe (bf16 autocast) exercised on CPU: no dtype clash, finite losses."""
    torch.manual_seed(0)
    model = CARAT(tiny_config()).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, terms = model.training_step(random_batch())
        out = model.eval()(random_batch())
    loss.backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert model.prototypes.pos.dtype == torch.float32
    assert model.queue.features.dtype == torch.float32
    assert out.scores.shape == (B, C)


def test_checkpointed_resampler_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    plain = SoftResampler(5, out_len=6).train()
    recomputed = SoftResampler(5, out_len=6, checkpoint_min_len=4).train()
    recomputed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 5)
    outs, grads = [], []
    for resampler in (plain, recomputed):
        out = resampler(x)
        out.pow(2).sum().backward()
        outs.append(out)
        grads.append(resampler.lstm.weight_hh_l0.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_mask_padding_without_masks_is_a_clear_error():
    cfg = tiny_config()
    cfg.model.mask_padding = True
    batch = random_batch()
    batch.masks = {}
    with pytest.raises(DataError, match="no text mask"):
        CARAT(cfg).encode(batch)

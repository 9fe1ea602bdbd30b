"""RealNVP with log-det based masking (Das et al. 2019, Sec. 3.2.2, Fig. 1): the masks from a known
log-det map, the exact stage-2 model (round trip, log-det vs autograd), the per-dimension log-det
maps of stage 1 summing to the log-det, and both stages from one CLI command, reloaded."""
from __future__ import annotations

import math

import pytest
import torch

from funnelrun.evaluation.exactness import logdet_max_abs_err
from funnelrun.evaluation.logdet_map import level_logdet_maps
from funnelrun.models.glow import build_realnvp
from funnelrun.models.realnvp_ldmask import build_realnvp_ldmask, logdet_squeezes, masks_from_maps, set_masks
from funnelrun.transforms.ldmask import LogDetSqueeze, local_logdet_mask

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(levels=2, steps_per_level=1, hidden_channels=4, num_res_blocks=1, factor_out=True)


def _randomise(model, std=0.05):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)


def test_mask_keeps_the_two_locally_largest_of_each_patch():
    logdet = torch.tensor([[[1.0, 5.0, 0.0, 0.0],
                            [3.0, 2.0, 1.0, 2.0],
                            [9.0, 8.0, 7.0, 6.0],
                            [1.0, 2.0, 3.0, 4.0]]])
    # per 2x2 patch: the max (max-pooling) and the larger of the middle two are kept; the min
    # (min-pooling) and the smaller middle one are factored out; ties: the first offset goes out
    expected = torch.tensor([[[0, 1, 0, 0],
                              [1, 0, 1, 1],
                              [1, 1, 1, 1],
                              [0, 0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(local_logdet_mask(logdet), expected)


def test_logdet_squeeze_puts_the_factored_elements_first():
    kept = local_logdet_mask(torch.tensor([[[1.0, 5.0], [3.0, 2.0]]]))
    z, logdet = LogDetSqueeze((1, 2, 2), kept)(torch.tensor([[[[10.0, 11.0], [12.0, 13.0]]]]))
    # factored: 10 (log-det 1), 13 (2); kept: 11 (5), 12 (3), each half in row-major order
    assert z.flatten().tolist() == [10.0, 13.0, 11.0, 12.0] and logdet.tolist() == [0.0]


def test_masks_follow_the_kept_dimensions_to_the_next_level():
    maps = [torch.arange(16.0).reshape(1, 4, 4), -torch.arange(16.0).reshape(1, 4, 4)]
    masks, exit_level = masks_from_maps(maps + [torch.zeros(1, 4, 4)])
    # level 0 keeps the bottom row of each patch (larger); level 1 sees those 8 pixels as (2, 2, 2)
    # and keeps the two of each patch with the larger -index, i.e. the smaller pixel indices
    assert torch.equal(masks[0][0, 1::2], torch.ones(2, 4, dtype=torch.bool)) and not masks[0][0, ::2].any()
    assert masks[1].shape == (2, 2, 2) and masks[1].sum() == 4
    assert (exit_level == 0).sum() == 8 and (exit_level == 1).sum() == 4 and (exit_level == 2).sum() == 4
    assert (exit_level[0, ::2] == 0).all()


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4)])
def test_ldmask_model_roundtrips_and_matches_autograd(shape):
    torch.manual_seed(0)
    model = build_realnvp_ldmask(shape, image=TINY).double().eval()
    _randomise(model)
    set_masks(model, [local_logdet_mask(torch.randn(shape))])
    assert model.latent_dim == math.prod(shape) and model.exact
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, _ = model.transform(x)
        assert torch.allclose(model.transform.inverse(z), x, atol=1e-8)
    assert logdet_max_abs_err(model.transform, x[:2]) < 1e-8


def test_masks_are_restored_by_load_state_dict():
    model = build_realnvp_ldmask((1, 4, 4), image=TINY)
    mask = local_logdet_mask(torch.randn(1, 4, 4))
    set_masks(model, [mask])
    fresh = build_realnvp_ldmask((1, 4, 4), image=TINY)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(logdet_squeezes(fresh)[0].kept, mask)


@pytest.mark.parametrize("actnorm", [False, True])
def test_logdet_maps_sum_to_the_logdet(actnorm):
    torch.manual_seed(0)
    model = build_realnvp((3, 4, 4), actnorm=actnorm, image=dict(TINY, factor_out=False)).double()
    model.log_prob(torch.randn(8, 3, 4, 4, dtype=torch.float64))  # ActNorm's data-dependent init
    model.eval()
    _randomise(model)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    maps = level_logdet_maps(model, x)
    with torch.no_grad():
        _, logdet = model.transform(x)
    assert len(maps) == 2 and maps[0].shape == (2, 3, 4, 4)
    assert torch.allclose(maps[-1].flatten(1).sum(1), logdet, atol=1e-10)
    assert not torch.allclose(maps[0], maps[1])


#: a two-stage run on the embedded digits, small enough for the suite
TINY_RUN = [
    "model=realnvp_ldmask", "data=digits", "model.stage1_steps=4", "model.image.levels=2",
    "model.image.steps_per_level=1", "model.image.hidden_channels=4", "model.image.num_res_blocks=1",
    "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
]


def test_both_stages_from_one_command_and_reload(run_cli, tmp_path):
    from funnelrun.builder import load_model

    run_dir = tmp_path / "run"
    result = run_cli(run_dir, *TINY_RUN)
    assert result.code == 0, result.err
    assert (run_dir / "stage1" / "metrics.json").exists()
    saved = torch.load(run_dir / "ldmask" / "masks.pt")
    assert (run_dir / "ldmask" / "masks.png").exists()
    assert [tuple(m.shape) for m in saved["masks"]] == [(1, 8, 8)]
    metrics = result.metrics
    assert metrics["exact"] and math.isfinite(metrics["test/bpd"]) and metrics["latent_dim"] == 64

    _, _, model = load_model([*TINY_RUN, f"ckpt_path={run_dir / metrics['best_checkpoint']}"])
    assert torch.equal(logdet_squeezes(model)[0].kept, saved["masks"][0])


# -- the Glow variant (Sec. 3.2.2, "Implementation for Glow"): per-channel scores from the singular
# values of the 1 x 1 convolutions, channel-wise masks


def _set_diagonal(conv, diagonal):
    """Make the LU weight of ``conv`` the diagonal matrix ``diagonal`` (positive entries)."""
    with torch.no_grad():
        conv.lu.copy_(torch.diag(torch.log(torch.expm1(diagonal - conv.eps))))


def test_channel_scores_of_a_diagonal_conv_are_the_log_diagonal():
    from funnelrun.evaluation.channel_logdet import channel_logdet
    from funnelrun.transforms.conv1x1 import Conv1x1

    conv = Conv1x1(3, seed=1).double()
    _set_diagonal(conv, torch.tensor([2.0, 0.5, 3.0], dtype=torch.float64))
    scores = channel_logdet(conv.weight())
    # output channel c gets log W_cc; the input permutation does not move them; they sum to log|det|
    assert torch.allclose(scores, torch.tensor([math.log(2.0), math.log(0.5), math.log(3.0)], dtype=torch.float64))
    x = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    assert torch.allclose(scores.sum() * 4, conv(x)[1])


def test_channel_scores_sum_to_the_log_det_of_a_full_matrix():
    from funnelrun.evaluation.channel_logdet import channel_logdet

    weight = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(channel_logdet(weight).sum(), torch.linalg.slogdet(weight)[1])
    rotation = torch.linalg.qr(weight)[0]  # an orthogonal W: every channel scores 0
    assert torch.allclose(channel_logdet(rotation), torch.zeros(5, dtype=torch.float64), atol=1e-12)


def test_level_channel_scores_accumulate_through_the_squeeze():
    from funnelrun.evaluation.channel_logdet import level_channel_scores
    from funnelrun.models.image_flows import build_image_nsf
    from funnelrun.transforms.conv1x1 import Conv1x1

    model = build_image_nsf((1, 4, 4), affine=True, image=dict(TINY, factor_out=False)).double()
    convs = [[m for m in level.modules() if isinstance(m, Conv1x1)] for level in model.transform.transforms[0].levels]
    assert [len(c) for c in convs] == [2, 2]  # a step and the closing conv; level 0: 4 channels, level 1: 16
    diagonal = torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=torch.float64)
    for conv in convs[0]:
        _set_diagonal(conv, diagonal)
    _set_diagonal(convs[1][0], torch.full((16,), 2.0, dtype=torch.float64))
    scores = level_channel_scores(model)
    assert torch.allclose(scores[0], 2 * diagonal.log())
    # channel 4c + k of level 1 inherits channel c's score, plus log 2 from level 1's first conv
    assert torch.allclose(scores[1], (2 * diagonal.log()).repeat_interleave(4) + math.log(2.0), atol=1e-6)


def test_channel_masks_keep_the_higher_scored_half_and_follow_them():
    from funnelrun.models.realnvp_ldmask import channel_masks_from_scores

    level0 = torch.tensor([0.0, 3.0, 1.0, 2.0])
    level1 = torch.arange(16.0).flip(0)  # higher score at lower stage-1 channel
    masks = channel_masks_from_scores([level0, level1, torch.zeros(64)])
    assert masks[0].tolist() == [False, True, False, True]
    # level 1 of the factored-out model sees channels 4..7 and 12..15 of stage 1; the 4 best: 4..7
    assert masks[1].tolist() == [True] * 4 + [False] * 4


def test_channel_split_puts_the_factored_channels_first():
    from funnelrun.transforms.ldmask_channels import LogDetChannelSplit

    split = LogDetChannelSplit(4, torch.tensor([True, False, True, False]))
    x = torch.arange(4.0).reshape(1, 4, 1, 1)
    z, logdet = split(x)
    assert z.flatten().tolist() == [1.0, 3.0, 0.0, 2.0] and logdet.tolist() == [0.0]
    assert torch.equal(split.inverse(z), x)
    with pytest.raises(ValueError, match="keeps 2"):
        split.set_mask(torch.tensor([True, True, True, False]))


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 4, 4)])
def test_glow_ldmask_model_roundtrips_and_matches_autograd(shape):
    from funnelrun.evaluation.channel_logdet import level_channel_scores
    from funnelrun.models.image_flows import build_image_nsf
    from funnelrun.models.realnvp_ldmask import channel_masks_from_scores, mask_layers

    torch.manual_seed(0)
    stage1 = build_image_nsf(shape, affine=True, image=dict(TINY, factor_out=False)).double()
    _randomise(stage1, std=0.3)
    masks = channel_masks_from_scores(level_channel_scores(stage1))
    model = build_realnvp_ldmask(shape, image=TINY, ldmask_source="conv_svd").double()
    model.log_prob(torch.randn(8, *shape, dtype=torch.float64))  # ActNorm's data-dependent init
    model.eval()
    _randomise(model)
    set_masks(model, masks)
    assert [tuple(m.kept.shape) for m in mask_layers(model)] == [(4 * shape[0],)]
    assert not torch.equal(masks[0], torch.arange(4 * shape[0]) >= 2 * shape[0])  # not Glow's fixed split
    assert model.latent_dim == math.prod(shape) and model.exact
    x = torch.randn(3, *shape, dtype=torch.float64)
    with torch.no_grad():
        z, _ = model.transform(x)
        assert torch.allclose(model.transform.inverse(z), x, atol=1e-8)
    assert logdet_max_abs_err(model.transform, x[:2]) < 1e-8


def test_glow_variant_from_one_command_and_reload(run_cli, tmp_path):
    from funnelrun.builder import load_model
    from funnelrun.models.realnvp_ldmask import mask_layers

    run_dir = tmp_path / "run"
    overrides = [*TINY_RUN, "model.ldmask_source=conv_svd"]
    result = run_cli(run_dir, *overrides)
    assert result.code == 0, result.err
    assert (run_dir / "stage1" / "metrics.json").exists()
    saved = torch.load(run_dir / "ldmask" / "masks.pt")
    # digits (1, 8, 8): level 0 squeezes to 4 channels, of which 2 are kept
    assert [tuple(s.shape) for s in saved["channel_scores"]] == [(4,), (16,)]
    assert [m.tolist().count(True) for m in saved["masks"]] == [2]
    metrics = result.metrics
    assert metrics["exact"] and math.isfinite(metrics["test/bpd"]) and metrics["latent_dim"] == 64

    _, _, model = load_model([*overrides, f"ckpt_path={run_dir / metrics['best_checkpoint']}"])
    assert torch.equal(mask_layers(model)[0].kept, saved["masks"][0])

"""Packing: patchify, token-budget planning, PackedBatch, unpack."""

import math

import pytest
import torch

from audioflex.packing import (
    collate_packed,
    grid_size,
    num_tokens,
    pack,
    packing_fill,
    patchify,
    plan_batches,
    unpack,
)


def test_patchify_non_overlapping_layout():
    spec = torch.arange(32 * 48, dtype=torch.float32).reshape(32, 48)
    patches, coords, grid = patchify(spec)
    assert grid == (2, 3)
    assert patches.shape == (6, 256)
    # frequency-major token order, each patch row-major over (bin, frame)
    for n, (f, t) in enumerate(coords.tolist()):
        assert n == f * 3 + t
        ref = spec[f * 16 : (f + 1) * 16, t * 16 : (t + 1) * 16].reshape(-1)
        assert torch.equal(patches[n], ref)


def test_patchify_pads_partial_patch_and_tiny_clips():
    spec = torch.ones(128, 20)
    patches, _, grid = patchify(spec, pad_value=-1.0)
    assert grid == (8, 2)
    last = patches[1].reshape(16, 16)  # (f=0, t=1): frames 16..19 real, rest padding
    assert torch.all(last[:, :4] == 1) and torch.all(last[:, 4:] == -1)
    _, _, grid1 = patchify(torch.ones(128, 1))
    assert grid1 == (8, 1)


def test_patchify_strided_matches_conv_grid():
    spec = torch.randn(128, 200)
    patches, coords, grid = patchify(spec, 16, 10)
    assert grid == (12, 19) == grid_size(128, 200, 16, 10)
    w = torch.randn(8, 1, 16, 16)
    conv = torch.nn.functional.conv2d(spec[None, None], w, stride=10)[0].flatten(1).t()
    assert torch.allclose(patches @ w.reshape(8, -1).t(), conv, atol=1e-4)
    assert coords[-1].tolist() == [11, 18]


@pytest.mark.parametrize("seed", range(5))
def test_plan_batches_ffd_respects_budget_and_covers_all(seed):
    g = torch.Generator().manual_seed(seed)
    counts = (torch.rand(60, generator=g) * 500 + 8).long().tolist()
    counts[3] = 5000  # larger than the budget: a batch of its own
    plan = plan_batches(counts, 2048)
    flat = sorted(i for b in plan for i in b)
    assert flat == list(range(60))
    for b in plan:
        assert sum(counts[i] for i in b) <= 2048 or b == [3]
    greedy = plan_batches(counts, 2048, sort=False)
    assert len(plan) <= len(greedy)
    lower = math.ceil(sum(c for i, c in enumerate(counts) if i != 3) / 2048) + 1
    assert len(plan) <= lower + 1


def test_plan_batches_greedy_is_in_order():
    assert plan_batches([10, 10, 10, 5], 20, sort=False) == [[0, 1], [2, 3]]
    assert plan_batches([10, 10, 10, 5], 20, max_clips=1, sort=False) == [[0], [1], [2], [3]]
    with pytest.raises(ValueError):
        plan_batches([1], 0)


def test_collate_packed_layout_and_padding_segment():
    specs = [torch.randn(128, 160), torch.randn(128, 33), torch.randn(128, 512)]
    b = collate_packed(specs, pad_to=1000)
    lens = [num_tokens(128, s.shape[1]) for s in specs]
    assert lens == [80, 24, 256]
    assert b.info.cu_seqlens_list == (0, 80, 104, 360, 1000)
    assert b.info.cu_seqlens.tolist() == [0, 80, 104, 360, 1000]
    assert b.num_clips == 3 and b.num_tokens == 360 and b.max_seqlen == 640
    assert b.patches.shape == (1000, 256) and b.coords.shape == (1000, 2)
    assert b.info.segment_ids[79].item() == 0 and b.info.segment_ids[80].item() == 1
    assert b.grid_sizes == ((8, 10), (8, 3), (8, 32))


def test_collate_packed_training_crops_long_clips_inference_never():
    spec = torch.randn(128, 16 * 300)
    g = torch.Generator().manual_seed(0)
    train = collate_packed([spec], max_tokens=2048, train=True, generator=g)
    assert train.num_tokens <= 2048
    infer = collate_packed([spec], max_tokens=2048)
    assert infer.num_tokens == 8 * 300


def test_pack_unpack_restores_order_and_fill():
    g = torch.Generator().manual_seed(1)
    specs = [torch.randn(128, int(x)) for x in torch.randint(16, 700, (25,), generator=g)]
    batches = pack(specs, max_tokens=1024)
    outs = [torch.tensor([specs[i].shape[1] for i in b.index], dtype=torch.float32) for b in batches]
    restored = unpack(outs, batches)
    assert restored.tolist() == [float(s.shape[1]) for s in specs]
    assert 0.5 < packing_fill(batches, 1024) <= 1.0


def test_packed_batch_to_device_keeps_host_ints():
    b = collate_packed([torch.randn(128, 64)], targets=[torch.tensor([1.0, 0.0])])
    c = b.to("cpu")
    assert c.info.cu_seqlens_list == b.info.cu_seqlens_list
    assert c.targets.shape == (1, 2)

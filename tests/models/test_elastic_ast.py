"""ElasticAST / AST models: packed == alone, backends agree, isolation, any length, token drop."""

import pytest
import torch

from audioflex.models.ast import AST, ElasticAST
from audioflex.packing import collate_packed, pack, unpack

TINY = dict(num_classes=5, embed_dim=32, depth=2, num_heads=4, max_time_patches=8)


def tiny_elastic(**kw):
    torch.manual_seed(0)
    return ElasticAST(**{**TINY, **kw}).eval()


def random_specs(n, seed, lo=1, hi=300):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randn(128, t, generator=g) for t in lengths]


@pytest.mark.parametrize("backend", ["loop", "dense", "flex"])
@pytest.mark.parametrize("seed", [0, 1])
def test_packed_equals_alone(backend, seed):
    model = tiny_elastic(backend=backend)
    specs = random_specs(7, seed)
    budget = [64, 200, 100000][seed % 3]
    with torch.no_grad():
        batches = pack(specs, max_tokens=budget)
        packed = unpack([model(b).clip_logits for b in batches], batches)
        alone = torch.cat([model(collate_packed([s])).clip_logits for s in specs])
    assert torch.allclose(packed, alone, atol=1e-5, rtol=0), (packed - alone).abs().max()


@pytest.mark.parametrize("pool", ["attn", "mean"])
def test_backends_agree_with_padding_segment(pool):
    specs = random_specs(5, 3)
    outs = {}
    for backend in ["loop", "dense", "flex"]:
        model = tiny_elastic(backend=backend, pool=pool)
        with torch.no_grad():
            out = model(collate_packed(specs, pad_to=2000))
        assert torch.isfinite(out.clip_logits).all() and out.clip_logits.shape == (5, 5)
        outs[backend] = out
    for b in ("dense", "flex"):
        assert torch.allclose(outs[b].clip_logits, outs["loop"].clip_logits, atol=1e-5)
        assert torch.allclose(outs[b].embedding, outs["loop"].embedding, atol=1e-5)
    no_pad = tiny_elastic(pool=pool)(collate_packed(specs)).clip_logits
    assert torch.allclose(no_pad, outs["loop"].clip_logits, atol=1e-5)


def test_backends_agree_on_gradients():
    specs = random_specs(4, 5)
    grads = {}
    for backend in ["loop", "dense"]:
        model = tiny_elastic(backend=backend, token_drop=0.0).train()
        model(collate_packed(specs)).clip_logits.square().sum().backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads["loop"], grads["dense"], atol=1e-4)


def test_changing_one_clip_never_changes_another():
    model = tiny_elastic()
    specs = random_specs(4, 7)
    with torch.no_grad():
        a = model(collate_packed(specs)).clip_logits
        specs[2] = torch.randn_like(specs[2]) * 10
        b = model(collate_packed(specs)).clip_logits
    assert not torch.allclose(a[2], b[2])
    others = [0, 1, 3]
    assert torch.allclose(a[others], b[others], atol=1e-6)


@pytest.mark.parametrize("frames", [1, 15, 16, 17, 128, 16 * 8, 16 * 8 + 1, 16 * 40])
def test_any_length_runs(frames):
    model = tiny_elastic()  # time table holds 8 columns; longer clips resample it
    with torch.no_grad():
        out = model(collate_packed([torch.randn(128, frames)]))
    assert out.clip_logits.shape == (1, 5) and torch.isfinite(out.clip_logits).all()


def test_long_clip_uses_resampled_time_table():
    model = tiny_elastic()
    spec = torch.randn(128, 16 * 20)
    b = collate_packed([spec])
    from audioflex.layers.pos_embed import factorized_positions, resample_1d

    pos = factorized_positions(
        model.pos_embed_freq, model.pos_embed_time, b.coords, b.grid_sizes, b.info.cu_seqlens_list
    )
    ttab = resample_1d(model.pos_embed_time, 20)
    expect = model.pos_embed_freq[b.coords[:, 0]] + ttab[b.coords[:, 1]]
    assert torch.allclose(pos, expect)
    assert torch.allclose(ttab[0], model.pos_embed_time[0]) and torch.allclose(ttab[-1], model.pos_embed_time[-1])


def test_token_dropping_only_in_training():
    model = tiny_elastic(token_drop=0.5)
    b = collate_packed(random_specs(3, 9, lo=64, hi=200))
    with torch.no_grad():
        e1, e2 = model(b).clip_logits, model(b).clip_logits
    assert torch.equal(e1, e2)
    model.train()
    x = model.patch_embed(b.patches)
    kept_x, kept_c, info = model.drop_tokens(x, b.coords, b.info, b.num_clips)
    lens = b.info.lengths
    assert info.lengths == tuple(max(1, int(n * 0.5)) for n in lens)
    assert kept_x.shape[0] == sum(info.lengths)
    torch.manual_seed(1)
    t1 = model(b).clip_logits
    torch.manual_seed(2)
    t2 = model(b).clip_logits
    assert not torch.allclose(t1, t2)


def test_hidden_states_and_feature_head_split():
    model = tiny_elastic()
    b = collate_packed(random_specs(2, 11))
    out = model(b, return_layers=(1, 0))
    assert len(out.hidden_states) == 2 and out.hidden_states[0].shape == (b.num_tokens, 32)
    tokens, info, _ = model.forward_features(b)
    head = model.forward_head(tokens, info, b.num_clips)
    logits, emb = head.clip_logits, head.embedding
    assert torch.allclose(logits, out.clip_logits) and torch.allclose(emb, out.embedding)


def test_ast_forward_shapes_and_other_lengths():
    torch.manual_seed(0)
    model = AST(num_classes=4, embed_dim=32, depth=2, num_heads=4, max_length=200).eval()
    assert model.grid == (12, 19)
    with torch.no_grad():
        out = model(torch.randn(2, 128, 200), return_layers=(0,))
        assert out.clip_logits.shape == (2, 4) and out.embedding.shape == (2, 32)
        assert out.hidden_states[0].shape == (2, 230, 32)
        for t in (5, 100, 512):  # resampled position grid
            assert torch.isfinite(model(torch.randn(1, 128, t)).clip_logits).all()
        # batch rows are independent
        x = torch.randn(3, 128, 200)
        full = model(x).clip_logits
        assert torch.allclose(full[1], model(x[1:2]).clip_logits[0], atol=1e-5)


def test_loop_backend_batches_equal_length_runs():
    from audioflex.layers.attention import SeqInfo, equal_length_runs, varlen_attention

    assert equal_length_runs((0, 4, 8, 12, 15, 18, 20)) == [(0, 4, 3), (12, 3, 2), (18, 2, 1)]
    info = SeqInfo.from_lengths([4, 4, 4, 3, 3, 2])
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 20, 8, generator=g) for _ in range(3))
    loop = varlen_attention(q, k, v, info, backend="loop")
    dense = varlen_attention(q, k, v, info, backend="dense")
    assert torch.allclose(loop, dense, atol=1e-6)


def test_rows_frame_head_gives_each_frequency_row_its_weights():
    """frame_pool='rows': a column's logits = Linear over its rows' normed tokens side by side."""
    model = tiny_elastic(frame_head=True, frame_pool="rows")  # 128 mel bins: 8 rows of 16
    assert model.frame_fc.in_features == 8 * 32
    specs = random_specs(3, 5, lo=17, hi=200)
    batch = collate_packed(specs)
    with torch.no_grad():
        out = model(batch)
        tokens, _, _ = model.forward_features(batch)
    n0 = batch.info.lengths[0]
    in_col = batch.coords[:n0, 1] == 1  # clip 0, column 1
    rows = model.frame_norm(tokens[:n0][in_col])[batch.coords[:n0][in_col, 0].argsort()]
    with torch.no_grad():
        ref = model.frame_fc(rows.reshape(-1))
    assert torch.allclose(ref, out.frame_logits[0, 1], atol=1e-5)
    with torch.no_grad():
        swapped = model.frame_fc(rows.flip(0).reshape(-1))
    assert not torch.allclose(swapped, ref, atol=1e-3)  # the row order matters (a mean would not see it)
    for i, s in enumerate(specs):  # packed == alone
        with torch.no_grad():
            alone = model(collate_packed([s])).frame_logits[0]
        assert (alone - out.frame_logits[i, : alone.shape[0]]).abs().max() <= 1e-5
    with torch.no_grad():  # the tensor-only (ONNX) form gives the same frames
        sizes = torch.tensor(batch.grid_sizes)
        graph = model.packed_graph()(batch.patches, batch.coords, batch.info.segment_ids, sizes)
    assert torch.allclose(graph[2], out.frame_logits, atol=1e-5)
    # training with token dropping: a dropped token's row is zeros, every row's weights learn
    model.train()
    model.token_drop = 0.3
    model(batch).frame_logits.clamp(min=-50).sum().backward()
    grad = model.frame_fc.weight.grad.view(5, 8, 32)
    assert (grad.abs().sum(dim=(0, 2)) > 0).all()
    with pytest.raises(ValueError, match="frame_pool"):
        ElasticAST(**TINY, frame_head=True, frame_pool="max")


@pytest.mark.parametrize("frame_pool", ["mean", "rows"])
def test_frame_substeps_give_finer_frame_steps(frame_pool):
    """frame_substeps=K: each column gives K steps of C logits ([B, K * T'_max, C]), column t step k
    at t * K + k; packed == alone; the tensor-only graph agrees; the contract's step is patch / K."""
    k = 4
    model = tiny_elastic(frame_head=True, frame_pool=frame_pool, frame_substeps=k)
    assert model.frame_fc.out_features == 5 * k
    assert model.contract.frame_step_frames == model.patch_size // k
    specs = random_specs(3, 7, lo=17, hi=200)
    batch = collate_packed(specs, frame_shift_ms=[10.0] * 3)
    cols = [g[1] for g in batch.grid_sizes]
    with torch.no_grad():
        out = model(batch)
        tokens, _, _ = model.forward_features(batch)
    assert out.frame_logits.shape == (3, k * max(cols), 5)
    assert out.frame_hop_s == pytest.approx(model.patch_size / k * 0.010)
    if frame_pool == "mean":  # column 1 of clip 0: the head's K*C outputs, read as K steps of C
        n0 = batch.info.lengths[0]
        in_col = batch.coords[:n0, 1] == 1
        with torch.no_grad():
            ref = model.frame_fc(model.frame_norm(tokens[:n0][in_col].mean(0))).view(k, 5)
        assert torch.allclose(ref, out.frame_logits[0, k : 2 * k], atol=1e-5)
    for i, (s, c) in enumerate(zip(specs, cols)):
        with torch.no_grad():
            alone = model(collate_packed([s])).frame_logits[0]
        assert alone.shape == (k * c, 5)
        assert (alone - out.frame_logits[i, : k * c]).abs().max() <= 1e-5
        assert (out.frame_logits[i, k * c :] == model.FRAME_PAD).all()  # padding past the clip's columns
    with torch.no_grad():
        sizes = torch.tensor(batch.grid_sizes)
        graph = model.packed_graph()(batch.patches, batch.coords, batch.info.segment_ids, sizes)
    assert torch.allclose(graph[2], out.frame_logits, atol=1e-5)


@pytest.mark.parametrize("bad", [0, 3, 32, 2.0])
def test_frame_substeps_must_divide_the_patch(bad):
    with pytest.raises(ValueError, match="frame_substeps"):
        ElasticAST(**TINY, frame_head=True, frame_substeps=bad)

"""gguf_dequant.diffusers: a tiny Flux transformer loaded by diffusers from GGUF
files (from_single_file + GGUFQuantizationConfig, local config, no hub) runs,
with the patch, to the same bits as the same model holding ggml's own values
of its weights, for types diffusers decodes and types it cannot; the patch
nests, works across threads and is undone exactly."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import gguf_dequant.diffusers as gd  # noqa: E402
from diffusers_model import (  # noqa: E402
    DIFFUSERS_TYPES,
    OTHER_TYPES,
    flux_inputs,
    load_gguf_model,
    reference_model,
    write_config,
    write_flux_gguf,
)
from diffusers.quantizers.gguf import gguf_quantizer, utils  # noqa: E402


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("flux") / "transformer")


def _originals():
    return (
        vars(utils.GGUFLinear)["forward"],
        vars(utils.GGUFLinear)["forward_native"],
        utils.dequantize_gguf_tensor,
        gguf_quantizer.dequantize_gguf_tensor,
        utils.SUPPORTED_GGUF_QUANT_TYPES,
    )


ORIGINALS = _originals()


def _same_as_diffusers() -> bool:
    return all(a is b for a, b in zip(_originals(), ORIGINALS)) and not gd.is_patched()


def _run(model, dtype, **kw):
    with torch.no_grad():
        return model(**flux_inputs(dtype, **kw))[0]


def _assert_equal(what, got, want):
    assert not torch.isnan(want).any(), f"{what}: the reference has NaNs"
    assert got.dtype == want.dtype and got.shape == want.shape
    diff = (got.float() - want.float()).abs().max().item()
    assert torch.equal(got, want), f"{what}: differs from the reference by up to {diff}"


@pytest.mark.parametrize("ty", DIFFUSERS_TYPES + OTHER_TYPES)
def test_every_type_equals_ggml_values(tmp_path, config, ty):
    path = tmp_path / f"flux-{ty}.gguf"
    reference = write_flux_gguf(path, [ty])
    dtype = torch.bfloat16
    with gd.patch():
        model = load_gguf_model(path, config, dtype)
        assert isinstance(model.transformer_blocks[0].attn.to_q, utils.GGUFLinear)
        assert int(model.transformer_blocks[0].attn.to_q.weight.quant_type) == gd.GGML_TYPES[ty].id
        got = _run(model, dtype, batch=2)
    _assert_equal(ty, got, _run(reference_model(reference, dtype), dtype, batch=2))
    assert _same_as_diffusers()
    if ty in OTHER_TYPES:
        # without the patch diffusers refuses the file (its ValueError, which
        # its loader turns into an OSError)
        with pytest.raises(OSError) as e:
            load_gguf_model(path, config, dtype)
        chain, c = [], e.value
        while c is not None:
            chain.append(str(c))
            c = c.__cause__ or c.__context__
        assert any("which is unsupported" in m for m in chain), chain


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_mixed_types_every_compute_dtype(tmp_path, config, dtype):
    path = tmp_path / "flux-mixed.gguf"
    reference = write_flux_gguf(path, DIFFUSERS_TYPES + OTHER_TYPES)
    with gd.patch():
        model = load_gguf_model(path, config, dtype)
        got = _run(model, dtype)
        # model.dequantize() (diffusers' restore of plain nn.Linear layers)
        # goes through the patched dequantize_gguf_tensor: float32, ggml's values
        w = utils.dequantize_gguf_tensor(model.transformer_blocks[0].ff.net[2].weight)
        assert w.dtype == torch.float32
        assert torch.equal(w, torch.from_numpy(reference["transformer_blocks.0.ff.net.2.weight"]))
    _assert_equal(f"mixed {dtype}", got, _run(reference_model(reference, dtype), dtype))


def test_diffusers_own_path_differs_where_ours_does_not(tmp_path, config):
    # the equality above can fail: diffusers' own q4_K decode (through float16)
    # is not ggml's, and the same comparison catches it
    path = tmp_path / "flux-q4_K.gguf"
    reference = write_flux_gguf(path, ["q4_K"])
    dtype = torch.bfloat16
    want = _run(reference_model(reference, dtype), dtype)
    model = load_gguf_model(path, config, dtype)
    theirs = _run(model, dtype)
    assert not torch.equal(theirs, want)
    with gd.patch():
        ours = _run(model, dtype)  # the same model object, patched after loading
    _assert_equal("q4_K patched after load", ours, want)
    assert torch.equal(_run(model, dtype), theirs)  # unpatched again: diffusers' own


@pytest.fixture(scope="module")
def q4k(tmp_path_factory, config):
    path = tmp_path_factory.mktemp("q4k") / "flux-q4_K.gguf"
    reference = write_flux_gguf(path, ["q4_K", "iq2_xxs"])
    with gd.patch():
        model = load_gguf_model(path, config, torch.bfloat16)
    want = _run(reference_model(reference, torch.bfloat16), torch.bfloat16)
    return model, want, reference


def test_nesting_and_permanent_install_undone_exactly(q4k):
    model, want, _ = q4k
    assert _same_as_diffusers()
    with gd.patch():
        with gd.patch() as inner:
            _assert_equal("nested", _run(model, torch.bfloat16), want)
        assert inner._removed and gd.is_patched()
        _assert_equal("outer", _run(model, torch.bfloat16), want)
    assert _same_as_diffusers()
    # handles removed out of order; a permanent install stays until removed
    a, b = gd.patch(), gd.patch()
    a.remove()
    a.remove()  # again: nothing
    assert gd.is_patched()
    _assert_equal("permanent", _run(model, torch.bfloat16), want)
    b.remove()
    assert _same_as_diffusers()
    # an exception inside the block undoes it too
    with pytest.raises(RuntimeError, match="inside"):
        with gd.patch():
            raise RuntimeError("inside")
    assert _same_as_diffusers()
    # unpatched, diffusers cannot decode the iq2_xxs layers of this model
    with pytest.raises(KeyError):
        _run(model, torch.bfloat16)


def test_threads_patching_and_running_at_once(q4k):
    model, want, _ = q4k
    errors = []
    start = threading.Barrier(4)

    def work(i):
        try:
            start.wait()
            for k in range(3):
                with gd.patch(reuse_buffers=bool((i + k) % 2)):
                    if i % 2:
                        with gd.patch():
                            got = _run(model, torch.bfloat16)
                    else:
                        got = _run(model, torch.bfloat16)
                assert torch.equal(got, want), f"thread {i}"
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _same_as_diffusers()


def test_buffers_reused_only_where_safe(q4k):
    model, want, reference = q4k
    gd.clear_buffers()
    with gd.patch():
        _run(model, torch.bfloat16)
        bufs = dict(gd._local.buffers)
        assert ((1024, 256), torch.bfloat16) in bufs
        _run(model, torch.bfloat16)
        assert all(gd._local.buffers[k] is v for k, v in bufs.items())  # the same buffers again
        # with autograd recording (an input that requires grad) each weight is a new tensor
        # that the graph keeps: the input's gradient equals the reference model's
        inputs = flux_inputs(torch.bfloat16)
        inputs["hidden_states"].requires_grad_(True)
        out = model(**inputs)[0]
        out.float().square().sum().backward()
        ref = reference_model(reference, torch.bfloat16)
        rin = flux_inputs(torch.bfloat16)
        rin["hidden_states"].requires_grad_(True)
        ref(**rin)[0].float().square().sum().backward()
        assert torch.equal(inputs["hidden_states"].grad, rin["hidden_states"].grad)
    gd.clear_buffers()
    with gd.patch(reuse_buffers=False):
        _assert_equal("no reuse", _run(model, torch.bfloat16), want)
        assert not getattr(gd._local, "buffers", None)


def test_patched_layer_compiles_fullgraph(q4k):
    # torch.compile traces the patched forward as one graph calling our
    # operator (the functional one: no buffer reuse inside a graph)
    model, _, _ = q4k
    layer = model.transformer_blocks[0].ff.net[2]
    x = torch.randn(2, layer.in_features, dtype=torch.bfloat16)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad(), gd.patch():
        eager = layer(x)
        compiled = torch.compile(layer, fullgraph=True, backend=backend)(x)
    assert torch.equal(eager, compiled)
    called = [str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    assert len(graphs) == 1 and "gguf_dequant.dequantize" in called, called

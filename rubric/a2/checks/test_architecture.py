"""q2a / q3a: CNN and UNet built from MyConv2d, with the right shapes, layers and function.

Each model is built by the worker for several (kernel, num_filters, num_colours, in_channels) with
the handout's MyConv2d (a stand-in, so a broken provided layer does not sink the architecture), given
the same seeded weights as the reference in state-dict order, and run in eval mode.
"""
from __future__ import annotations

from conftest import expect, require

from grader.compare import allclose
from rubric.a2.plan import ARCH_CONFIGS, FORWARD_BATCH, config_key
from rubric.a2.sourcecheck import torch_convs_reached


def _call(model, kernel, nf, nc, cin):
    return f"{model}({kernel}, {nf}, {nc}{'' if cin == 1 else f', {cin}'})"


def _answers(run, model):
    """(config, answer, gold key) for each configuration that applies to this submission."""
    out = []
    for cfg in ARCH_CONFIGS:
        key = f"{model.lower()}_fwd/{config_key(*cfg)}"
        answer = run.answer(key)
        if not answer.ok and "num_in_channels" in (answer.error or "") and cfg[3] != 1:
            continue   # 2018 handout: no in-channels argument, so the 3-channel case does not apply
        require_with(answer, _call(model, *cfg))
        out.append((cfg, answer, key))
    return out


def require_with(answer, call):
    expect(answer.ok, f"{call}: {answer.error}")


def _hint(model, nc, shape):
    if len(shape) == 4 and shape[1] != nc and shape[1] in (24, 32):
        return f": is num_colours hard-coded as {shape[1]}?"
    if len(shape) == 4 and shape[2:] != [32, 32]:
        return ": the output must keep the 32x32 resolution"
    return ""


def check_output_shapes(run, model):
    problems = []
    answers = _answers(run, model)
    run.trust_facts()
    for (kernel, nf, nc, cin), answer, _ in answers:
        # the output array's own shape, not the worker's out_shape fact (facts can be forged)
        out = answer.arrays.get("out")
        shape = list(out.shape) if out is not None else answer.meta.get("out_shape", [])
        want = [FORWARD_BATCH, nc, 32, 32]
        if shape != want:
            problems.append(f"{_call(model, kernel, nf, nc, cin)} returned {shape}; "
                            f"expected {want}{_hint(model, nc, shape)}")
    expect(not problems, "\n".join(problems))


def check_uses_myconv(run, model):
    answers = _answers(run, model)
    run.trust_facts()
    for cfg, answer, _ in answers:
        convs = answer.meta.get("conv_modules", [])
        other = [c for c in convs if not c["myconv"]]
        expect(bool(convs), f"{_call(model, *cfg)} has no convolution layers")
        expect(not other, f"{model} uses {', '.join(sorted({c['type'] for c in other}))} for "
                          f"{', '.join(c['name'] for c in other)}; the handout asks for MyConv2d "
                          f"(not nn.Conv2d)")
    # The layer types are the worker's report; the source (kept before the worker ran) must agree.
    hits = torch_convs_reached(run.source("colourization") or "", model)
    expect(not hits, f"{model} builds {hits[0][1]} (line {hits[0][0]}); the handout asks for MyConv2d "
                     f"(not nn.Conv2d)" if hits else "")


def check_structure(run, model):
    answers = _answers(run, model)
    run.trust_facts()
    for cfg, answer, key in answers:
        mine = answer.meta.get("params", [])
        ref = run.expected(key).meta["params"]
        call = _call(model, *cfg)
        convs = [p for p in mine if len(p[1]) == 4]
        ref_convs = [p for p in ref if len(p[1]) == 4]
        expect(len(convs) == len(ref_convs),
               f"{call} has {len(convs)} convolutions; the handout's {model} has {len(ref_convs)}")
        for (name, shape), (_, ref_shape) in zip(mine, ref):
            expect(shape == ref_shape, f"{call}: `{name}` has shape {shape}; expected {ref_shape} "
                                       f"at this position of the handout's layer order")
        expect(len(mine) == len(ref), f"{call} has {len(mine)} parameter/buffer tensors; "
                                      f"expected {len(ref)}")
        expect(answer.meta.get("n_params") == run.expected(key).meta["n_params"],
               f"{call} has {answer.meta.get('n_params')} parameters; expected "
               f"{run.expected(key).meta['n_params']}")


def check_function(run, model, variants=("",)):
    params = run.params("q2a.cnn" if model == "CNN" else "q3a.unet")
    for cfg, answer, key in _answers(run, model):
        expect("out" in answer.arrays, f"{_call(model, *cfg)}: {answer.meta.get('weights_error', 'no output')}")
        results = []
        for variant in variants:
            gold = run.expected(key + variant)
            out = allclose(answer.arrays["out"], gold.arrays["out"], params["rtol"], params["atol"])
            grad = allclose(answer.arrays["grad"], gold.arrays["grad"], params["rtol"], params["atol"])
            results.append((out, grad))
            if out.ok and grad.ok:
                break
        else:
            out, grad = results[0]
            what = "output" if not out.ok else "gradient with respect to the input"
            detail = out.detail if not out.ok else grad.detail
            skip = (" (every order of the tensors inside each torch.cat was tried)"
                    if len(variants) > 1 else "")
            expect(False, f"{_call(model, *cfg)} with the reference's weights: the {what} differs from "
                          f"the handout's {model}: {detail}{skip}. Check the layer order and "
                          f"the connections between layers")


UNET_VARIANTS = ("",) + tuple(f"/swap-{a}{b}{c}" for a in "01" for b in "01" for c in "01")[1:]


def test_cnn_output_shapes(run):
    check_output_shapes(run, "CNN")


def test_cnn_uses_myconv(run):
    check_uses_myconv(run, "CNN")


def test_cnn_structure(run):
    check_structure(run, "CNN")


def test_cnn_function(run):
    check_function(run, "CNN")


def test_unet_output_shapes(run):
    check_output_shapes(run, "UNet")


def test_unet_uses_myconv(run):
    check_uses_myconv(run, "UNet")


def test_unet_structure(run):
    check_structure(run, "UNet")


def test_unet_function(run):
    check_function(run, "UNet", UNET_VARIANTS)

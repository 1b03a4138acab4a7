"""q2a / q3a: CNN and UNet built from MyConv2d, with the right shapes, layers and function.

Each model is built by the worker for several (kernel, num_filters, num_colours, in_channels) with
the handout's MyConv2d (a stand-in, so a broken provided layer does not sink the architecture), given
the same seeded weights as the reference in state-dict order, and run in eval mode.

One bug, one deduction: the MyConv2d, structure and function checks are judged at the handout's own
configuration (24 colours, one grey input channel); the generality check judges the other
configurations, and only for what is right at the handout's.
"""
from __future__ import annotations

from conftest import expect, require

from grader.checks.compare import allclose
from rubric.a2.plan import ARCH_CONFIGS, FORWARD_BATCH, HANDOUT_CONFIG, config_key
from rubric.a2.sourcecheck import torch_convs_reached


def _call(model, kernel, nf, nc, cin):
    return f"{model}({kernel}, {nf}, {nc}{'' if cin == 1 else f', {cin}'})"


def _answer(run, model, cfg):
    """The answer at one configuration, or None where it does not apply to this submission."""
    answer = run.answer(f"{model.lower()}_fwd/{config_key(*cfg)}")
    if not answer.ok and "num_in_channels" in (answer.error or "") and cfg[3] != 1:
        return None  # 2018 handout: no in-channels argument, so the 3-channel case does not apply
    return answer


def _at_handout(run, model):
    """(config, answer, gold key) at the handout's own configuration; a model that cannot be built
    there fails every check of the item (there is nothing to grade)."""
    answer = _answer(run, model, HANDOUT_CONFIG)
    require_with(answer, _call(model, *HANDOUT_CONFIG))
    return HANDOUT_CONFIG, answer, f"{model.lower()}_fwd/{config_key(*HANDOUT_CONFIG)}"


def require_with(answer, call):
    expect(answer.ok, f"{call}: {answer.error}")


def _hint(model, nc, shape):
    if len(shape) == 4 and shape[1] != nc and shape[1] in (24, 32):
        return f": is num_colours hard-coded as {shape[1]}?"
    if len(shape) == 4 and shape[2:] != [32, 32]:
        return ": the output must keep the 32x32 resolution"
    return ""


# Each aspect returns a problem (for the student) or None. The item's checks judge them at the
# handout's configuration; the generality check judges, at the other configurations, only the
# aspects that hold at the handout's, so one bug is charged once.

def shape_problem(model, cfg, answer):
    kernel, nf, nc, cin = cfg
    if "forward_error" in answer.meta:
        return f"{_call(model, *cfg)}: forward failed: {answer.meta['forward_error']}"
    # the output array's own shape, not the worker's out_shape fact (facts can be forged)
    out = answer.arrays.get("out")
    shape = list(out.shape) if out is not None else answer.meta.get("out_shape", [])
    want = [FORWARD_BATCH, nc, 32, 32]
    if shape != want:
        return f"{_call(model, *cfg)} returned {shape}; expected {want}{_hint(model, nc, shape)}"
    return None


def structure_problem(run, model, cfg, answer, key):
    mine = answer.meta.get("params", [])
    ref = run.expected(key).meta["params"]
    call = _call(model, *cfg)
    convs = [p for p in mine if len(p[1]) == 4]
    ref_convs = [p for p in ref if len(p[1]) == 4]
    if len(convs) != len(ref_convs):
        return f"{call} has {len(convs)} convolutions; the handout's {model} has {len(ref_convs)}"
    for (name, shape), (_, ref_shape) in zip(mine, ref):
        if shape != ref_shape:
            return (f"{call}: `{name}` has shape {shape}; expected {ref_shape} at this position of the "
                    f"handout's layer order")
    if len(mine) != len(ref):
        return f"{call} has {len(mine)} parameter/buffer tensors; expected {len(ref)}"
    if answer.meta.get("n_params") != run.expected(key).meta["n_params"]:
        return (f"{call} has {answer.meta.get('n_params')} parameters; expected "
                f"{run.expected(key).meta['n_params']}")
    return None


def function_problem(run, model, cfg, answer, key, variants=("",)):
    params = run.params("q2a.cnn" if model == "CNN" else "q3a.unet")
    if "out" not in answer.arrays:
        why = answer.meta.get("forward_error") or answer.meta.get("weights_error", "no output")
        return f"{_call(model, *cfg)}: {why}"
    results = []
    for variant in variants:
        gold = run.expected(key + variant)
        out = allclose(answer.arrays["out"], gold.arrays["out"], params["rtol"], params["atol"])
        grad = allclose(answer.arrays["grad"], gold.arrays["grad"], params["rtol"], params["atol"])
        results.append((out, grad))
        if out.ok and grad.ok:
            return None
    out, grad = results[0]
    what = "output" if not out.ok else "gradient with respect to the input"
    detail = out.detail if not out.ok else grad.detail
    tried = " (every order of the tensors inside each torch.cat was tried)" if len(variants) > 1 else ""
    return (f"{_call(model, *cfg)} with the reference's weights: the {what} differs from the handout's "
            f"{model}: {detail}{tried}. Check the layer order and the connections between layers")


def check_uses_myconv(run, model):
    """The convolutions are the handout's MyConv2d (worker's report at the handout's configuration,
    and the source kept before the worker ran)."""
    cfg, answer, _ = _at_handout(run, model)
    run.trust_facts()
    convs = answer.meta.get("conv_modules", [])
    other = [c for c in convs if not c["myconv"]]
    expect(bool(convs), f"{_call(model, *cfg)} has no convolution layers")
    expect(not other, f"{model} uses {', '.join(sorted({c['type'] for c in other}))} for "
                      f"{', '.join(c['name'] for c in other)}; the handout asks for MyConv2d "
                      f"(not nn.Conv2d)")
    hits = torch_convs_reached(run.source("colourization") or "", model)
    expect(not hits, f"{model} builds {hits[0][1]} (line {hits[0][0]}); the handout asks for MyConv2d "
                     f"(not nn.Conv2d)" if hits else "")


def check_structure(run, model):
    """At the handout's configuration, every layer's parameters have the handout's shapes, in its order."""
    cfg, answer, key = _at_handout(run, model)
    run.trust_facts()
    problem = structure_problem(run, model, cfg, answer, key)
    expect(problem is None, problem or "")


def check_function(run, model, variants=("",)):
    """At the handout's configuration, with the reference's weights, the output and the input
    gradient are the handout's model's."""
    cfg, answer, key = _at_handout(run, model)
    problem = function_problem(run, model, cfg, answer, key, variants)
    expect(problem is None, problem or "")


def check_generality(run, model, variants=("",)):
    """The model is built from its arguments: at the other configurations (another kernel size,
    number of filters, number of colours; 3 input channels where the signature takes them) it
    builds, and what holds at the handout's configuration (output shape, layer shapes, function)
    holds there too. A hard-coded 24 or 32 fails here only; what is already wrong at the handout's
    configuration is charged by its own check, not again here."""
    cfg0, answer0, key0 = _at_handout(run, model)
    run.trust_facts()
    aspects = {
        "shape": lambda cfg, a, key: shape_problem(model, cfg, a),
        "structure": lambda cfg, a, key: structure_problem(run, model, cfg, a, key),
        "function": lambda cfg, a, key: function_problem(run, model, cfg, a, key, variants),
    }
    held = [name for name, judge in aspects.items() if judge(cfg0, answer0, key0) is None]
    problems = []
    for cfg in ARCH_CONFIGS:
        if cfg == HANDOUT_CONFIG:
            continue
        answer = _answer(run, model, cfg)
        if answer is None:
            continue
        if not answer.ok:
            problems.append(f"{_call(model, *cfg)}: {answer.error}")
            continue
        key = f"{model.lower()}_fwd/{config_key(*cfg)}"
        for name in held:
            problem = aspects[name](cfg, answer, key)
            if problem:
                problems.append(problem)
                break
    expect(not problems, "\n".join(problems) + (
        f"\n(at the handout's {_call(model, *HANDOUT_CONFIG)} this is right: use the constructor's "
        f"arguments rather than fixed numbers)" if problems and held else ""))


UNET_VARIANTS = ("",) + tuple(f"/swap-{a}{b}{c}" for a in "01" for b in "01" for c in "01")[1:]


def test_cnn_generality(run):
    check_generality(run, "CNN")


def test_cnn_uses_myconv(run):
    check_uses_myconv(run, "CNN")


def test_cnn_structure(run):
    check_structure(run, "CNN")


def test_cnn_function(run):
    check_function(run, "CNN")


def test_unet_generality(run):
    check_generality(run, "UNet", UNET_VARIANTS)


def test_unet_uses_myconv(run):
    check_uses_myconv(run, "UNet")


def test_unet_structure(run):
    check_structure(run, "UNet")


def test_unet_function(run):
    check_function(run, "UNet", UNET_VARIANTS)

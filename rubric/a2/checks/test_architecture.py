"""q2a / q3a: CNN and UNet built from MyConv2d, with the right shapes, layers and function.

Each model is built by the worker for several (kernel, num_filters, num_colours, in_channels) with
the handout's MyConv2d (a stand-in, so a broken provided layer does not sink the architecture), given
the same seeded weights as the reference in state-dict order, and run in eval mode.
"""
from __future__ import annotations

import ast
import re

from conftest import expect, require

from grader.compare import allclose
from rubric.a2.plan import ARCH_CONFIGS, FORWARD_BATCH, config_key


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


# torch's own convolution modules; MyConv2d/MyDilatedConv2d are the handout's (the harness swaps in a
# stand-in for MyConv2d while it builds the model, so what they use inside does not matter here)
TORCH_CONV = re.compile(r"^(Lazy)?Conv(Transpose)?[123]d$")
PROVIDED = {"MyConv2d", "MyDilatedConv2d"}


def torch_convs_reached(source: str, cls_name: str) -> list[tuple[int, str]]:
    """(line, name) where class `cls_name`, or a module-level definition it uses (followed by name,
    transitively), refers to a torch convolution module: nn.Conv2d, torch.nn.Conv2d, a Conv2d imported
    from torch.nn, getattr(nn, "Conv2d"). Type tests (isinstance/issubclass) do not count."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    defs = {}
    top = list(tree.body)
    for stmt in list(top):                     # one level into top-level if/try blocks
        top += [s for part in ("body", "orelse", "finalbody") for s in getattr(stmt, part, [])
                if isinstance(stmt, (ast.If, ast.Try))]
        top += [s for h in getattr(stmt, "handlers", []) for s in h.body]
    for stmt in top:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = stmt.value
        elif isinstance(stmt, ast.ImportFrom):          # from torch.nn import Conv2d as C
            for alias in stmt.names:
                if TORCH_CONV.match(alias.name):
                    defs[alias.asname or alias.name] = ast.Constant(alias.name, lineno=stmt.lineno)
    hits, seen, todo = [], set(), [cls_name]
    while todo:
        name = todo.pop()
        if name in seen or name in PROVIDED or name not in defs:
            continue
        seen.add(name)
        skip = {id(n) for call in ast.walk(defs[name]) if isinstance(call, ast.Call)
                and getattr(call.func, "id", "") in ("isinstance", "issubclass") for arg in call.args[1:]
                for n in ast.walk(arg)}
        for node in ast.walk(defs[name]):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Attribute) and TORCH_CONV.match(node.attr):
                hits.append((node.lineno, ast.unparse(node)))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TORCH_CONV.match(node.value):
                hits.append((node.lineno, node.value))
            elif isinstance(node, ast.Name):
                if TORCH_CONV.match(node.id):
                    hits.append((node.lineno, node.id))
                else:
                    todo.append(node.id)
    return sorted(set(hits))


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

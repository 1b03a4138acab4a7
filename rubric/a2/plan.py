"""Probe groups of Assignment 2: what the worker is asked, with which inputs, for each rubric item.

A group turns (profile, gold inputs) into ProbeSpecs. With `for_gold=True` it may add requests that
only gold needs: the UNet's other concatenation orders (the handout leaves the order inside each
torch.cat to the student), run on the reference as weight-block rotations of the same seeded weights;
the reference trained from the profile's other init seeds (the spread training thresholds use).
"""
from __future__ import annotations

import itertools

from grader.probes.client import ProbeSpec

GROUPS: dict = {}

# (kernel, num_filters, num_colours, in_channels): catches hard-coded 24 colours, 32 filters, k=3,
# and one input channel.
ARCH_CONFIGS = [(3, 16, 24, 1), (5, 8, 16, 1), (3, 32, 32, 1), (3, 16, 24, 3)]
# The handout's own configuration (24 colours, one grey input channel): an item's structure and
# function checks are judged here, its generality check at the others (one bug, one deduction).
HANDOUT_CONFIG = ARCH_CONFIGS[0]
FORWARD_BATCH = 3
SEED = 0
INIT_PREFIX = "init-"     # gold's extra training runs: <key>/init-<seed>


def group(name):
    def register(fn):
        GROUPS[name] = fn
        return fn
    return register


def config_key(kernel, nf, nc, cin):
    return f"k{kernel}-f{nf}-c{nc}-i{cin}"


def forward_specs(model, profile, for_gold):
    specs = []
    for kernel, nf, nc, cin in ARCH_CONFIGS:
        args = dict(model=model, kernel=kernel, nf=nf, nc=nc, cin=cin, seed=SEED, batch=FORWARD_BATCH)
        key = f"{model.lower()}_fwd/{config_key(kernel, nf, nc, cin)}"
        specs.append(ProbeSpec(key, "model_forward", "colourization", args, timeout=profile["probe_timeout"],
                               part=model))
        if model == "UNet" and for_gold:
            for bits in itertools.product((0, 1), repeat=3):
                if any(bits):
                    specs.append(ProbeSpec(f"{key}/swap-{''.join(map(str, bits))}", "model_forward",
                                           "colourization", dict(args, swaps=unet_swaps(bits, nf, cin)),
                                           timeout=profile["probe_timeout"], part=model))
    return specs


def unet_swaps(bits, nf, cin):
    """Rotations of the input-channel blocks of upconv1, upconv2, finalconv (convs 3, 4, 5) that
    make the reference compute what a student with the other torch.cat order computes."""
    splits = (2 * nf, nf, cin)       # the size of the student's first block in each concatenation
    return [[3 + i, splits[i]] for i, bit in enumerate(bits) if bit]


@group("cnn_forward")
def cnn_forward(profile, inputs, for_gold=False):
    return forward_specs("CNN", profile, for_gold)


@group("unet_forward")
def unet_forward(profile, inputs, for_gold=False):
    return forward_specs("UNet", profile, for_gold)


def train_spec(model, profile, inputs, sr=False, for_gold=False):
    suffix = "_sr" if sr else ""
    args = dict(model=model, kernel=profile["kernel"], nf=profile["num_filters"],
                nc=int(inputs.meta["num_colours"]), cin=3 if sr else 1, seed=SEED,
                steps=profile["steps"], batch=profile["batch"], lr=profile["learn_rate"])
    arrays = {"x_train": inputs.arrays[f"train_x{suffix}"], "y_train": inputs.arrays["train_y"],
              "x_valid": inputs.arrays[f"valid_x{suffix}"]}          # valid_y never leaves
    key = f"{'sr_' if sr else ''}{model.lower()}_train"
    # The same model, untrained, through the forward probe: if it matches gold exactly (function
    # in both modes, and initial parameters bit for bit), training it would repeat the reference's.
    # Its parameter gradients on a training-size batch must match too, so a model that computes the
    # same function but cannot train like the reference (frozen parameters, ...) is trained for real.
    fwd = dict(args, batch=FORWARD_BATCH, train_mode=True, grad_batch=profile["batch"])
    for unused in ("steps", "lr"):
        fwd.pop(unused)
    # A constructor or forward that hangs fails the model's other probes at once (part=model); a
    # training run past its budget does not mark the model as hanging.
    specs = [ProbeSpec(f"{key}/untrained", "model_forward", "colourization", fwd, timeout=profile["probe_timeout"],
                       part=model),
             ProbeSpec(key, "model_train", "colourization", args, arrays, timeout=profile["train_timeout"],
                       reuse_if=f"{key}/untrained", part=model, hang_marks_part=False)]
    if for_gold:
        # The reference from other initial weights (same data, batch order and budget): the spread
        # a student's model, which draws its weights in its own order, is judged against.
        specs += [ProbeSpec(f"{key}/{INIT_PREFIX}{seed}", "model_train", "colourization", dict(args, init_seed=seed),
                            arrays, timeout=profile["train_timeout"], part=model, hang_marks_part=False)
                  for seed in range(1, int(profile.get("reference_seeds", 1)))]
    return specs


@group("cnn_train")
def cnn_train(profile, inputs, for_gold=False):
    return train_spec("CNN", profile, inputs, for_gold=for_gold)


@group("unet_train")
def unet_train(profile, inputs, for_gold=False):
    return train_spec("UNet", profile, inputs, for_gold=for_gold)


@group("sr_train")
def sr_train(profile, inputs, for_gold=False):
    return (train_spec("CNN", profile, inputs, sr=True, for_gold=for_gold)
            + train_spec("UNet", profile, inputs, sr=True, for_gold=for_gold))


@group("sr_process")
def sr_process(profile, inputs, for_gold=False):
    arrays = {"xs": inputs.arrays["proc_xs"], "ys": inputs.arrays["proc_ys"]}
    return [ProbeSpec("sr_process", "process", "colourization", dict(seed=SEED, downsize=True), arrays,
                      timeout=profile["probe_timeout"], part="process")]


@group("dilated")
def dilated(profile, inputs, for_gold=False):
    args = dict(cin=4, cout=6, kernel=3, seed=SEED, batch=2)
    return [ProbeSpec("dilated", "dilated", "colourization", args, timeout=profile["probe_timeout"],
                      part="MyDilatedConv2d")]


def snapshot_arrays(inputs):
    return {k: inputs.arrays[k] for k in ("Wxh", "Whh", "Why", "bh", "by")}


# r1 draws this many characters per call, so that every step is judged, not only the first: each
# drawn character must follow the model's distribution given the characters drawn before it.
SAMPLE_STEPS = 6


def _aliases():
    from rubric.a2 import roles

    return list(roles.SAMPLER_NAMES), list(roles.COMPLETION_NAMES)


@group("rnn_sample")
def rnn_sample(profile, inputs, for_gold=False):
    specs = []
    sampler, _ = _aliases()
    for ctx in inputs.meta["sample_contexts"]:
        args = dict(chars=inputs.meta["chars"], seed_ix=ctx["seed_ix"], n=SAMPLE_STEPS, alpha=ctx["alpha"],
                    reps=ctx["reps"], seed=SEED, names=inputs.meta["sample_names"], patterns=sampler)
        arrays = dict(snapshot_arrays(inputs), h=inputs.arrays[ctx["h"]])
        specs.append(ProbeSpec(f"rnn_sample/{ctx['name']}", "rnn_sample", "rnn", args, arrays,
                               timeout=profile["probe_timeout"]))
    return specs


@group("rnn_complete")
def rnn_complete(profile, inputs, for_gold=False):
    specs = []
    sampler, completion = _aliases()
    for i, ctx in enumerate(inputs.meta["complete_contexts"]):
        args = dict(chars=inputs.meta["chars"], starter=ctx["starter"], n=ctx["n"], reps=ctx["reps"],
                    seed=SEED, names=inputs.meta["complete_names"], patterns=completion,
                    sampler_patterns=sampler)
        specs.append(ProbeSpec(f"rnn_complete/{i}", "rnn_complete", "rnn", args, snapshot_arrays(inputs),
                               timeout=profile["probe_timeout"]))
    return specs

"""The roles of HW5 submissions, as data for `grader.locate` (see `grader.roles`).

nn.py and q4.py are code roles found by their functions (the handout's names: "DO NOT change the
given function name!"), whatever the file is called; the run_q*.py scripts are script roles, run to
completion by script probes, found by their names. util.py is the course's and is provided by the
pack (pack.toml [[provided]]).

The starters' fingerprints: `python3 -m grader.fingerprint ../shared/hw5-starter/{f20,f23}/python/nn.py`
(and q4.py). Both generations hash the same: every function but `sigmoid_deriv` is a placeholder,
and `sigmoid_deriv` is the course's own. They are stored here as data, so that the pack loads where
../shared is absent (CI); tests/test_hw5_pack.py recomputes them from the starters where present.
"""
from __future__ import annotations

from grader.intake.roles import SCRIPT, Role, Starter

NN_FUNCTIONS = ("initialize_weights", "sigmoid", "forward", "softmax", "compute_loss_and_acc", "backwards",
                "get_random_batches")

# ---------------------------------------------------------------------------------- fingerprints

NN_STARTER = Starter(
    name="the course's nn.py starter (2019-2024, both generations)",
    given=frozenset({
        "c408545eca41c0d3",  # sigmoid_deriv
    }),
    todo=NN_FUNCTIONS,
)
Q4_STARTER = Starter(
    name="the course's q4.py starter (2019-2024, both generations)",
    given=frozenset(),
    todo=("findLetters",),
)
# The placeholders' own hashes (the untouched starter's functions), for the tests that recompute them.
STARTER_PLACEHOLDERS = {
    "initialize_weights": "f22de18b9ac86444",
    "sigmoid": "1bb37e96e2a0603e",
    "forward": "b7db7b94b431de01",
    "softmax": "f126a85e32caf9e4",
    "compute_loss_and_acc": "c186f0e3529a83fe",
    "backwards": "e829639a6f43241b",
    "get_random_batches": "8d818250ecee63fc",
    "findLetters": "c95d1ea19b0cd52d",
}

# ------------------------------------------------------------------------------------------ roles

NN = Role(
    name="nn", module="nn",
    functions=NN_FUNCTIONS,
    signatures={"initialize_weights": ("in_size", "out_size", "params", "name"),
                "forward": ("X", "params", "name", "activation"),
                "backwards": ("delta", "params", "name", "activation_deriv"),
                "get_random_batches": ("x", "y", "batch_size")},
    stems=("nn",), keywords=(r"^nn", r"network"), keyword_rank=0,
    required=True,
    expected="nn.py (defining initialize_weights, sigmoid, forward, softmax, compute_loss_and_acc, "
             "backwards, get_random_batches)",
    starters=(NN_STARTER,),
)
Q4 = Role(
    name="q4", module="q4",
    functions=("findLetters",),
    stems=("q4",), keywords=(r"^q4", r"letter", r"scanner"), keyword_rank=1,
    expected="q4.py (defining findLetters(image))",
    starters=(Q4_STARTER,),
)


def _script(name: str, stems: tuple[str, ...], keywords: tuple[str, ...], what: str) -> Role:
    return Role(name=name, module=name, kind=SCRIPT, stems=stems, keywords=keywords, keyword_rank=2,
                suffixes=(".py",), expected=f"{name}.py ({what})")


RUN_Q2 = _script("run_q2", ("runq2",), (r"^runq2",), "the toy training loop and the gradient checker")
RUN_Q3 = _script("run_q3", ("runq3",), (r"^runq3", r"^trainnn$"),   # train_nn.py: a real f23 renaming
                 "training on NIST36; writes q3_weights.pickle")
# run_q4.py is graded by a TA (q4.3, q4.4); the grader runs it on a synthetic page for the TA's note
RUN_Q4 = _script("run_q4", ("runq4",), (r"^runq4",), "findLetters on the images, the text extracted")
RUN_Q5 = _script("run_q5", ("runq5",), (r"^runq5",), "the autoencoder with momentum")
# Q6.1.1 (extra credit): run_q6_1.py in 2021; f19/f20 numbered PyTorch Q7 (run_q7_1_1.py). Keywords
# only (a name level below those): run_q6.py of 2021-22 (a PCA script in f20, beside run_q7_1_1.py,
# which wins by its exact name), f18's q7.py, a pytorch_*.py of a reorganised submission.
RUN_Q6_1 = _script("run_q6_1", ("runq61", "runq611", "runq71", "runq711"),
                   (r"^runq[67]1(1|$)", r"^runq6$", r"^q7$", r"^pytorch"),
                   "the NIST36 network in PyTorch (extra credit)")

ROLES = (NN, Q4, RUN_Q2, RUN_Q3, RUN_Q4, RUN_Q5, RUN_Q6_1)

"""The roles of Assignment 2's submissions, as data for `grader.intake.locate` (see `grader.intake.roles`).

Each role is identified by the API the handouts ask for, not by a file name: the names the handouts
use (2018 scripts, 2019 notebooks, the char-RNN's `min-char-rnn.py`) only break ties and word the
messages. The starters' fingerprints let an unchanged copy of the course's starter lose to any file
that holds the student's own code.

How the fingerprints were made: `python3 -m grader.intake.fingerprint FILE` on the real submissions of each
handout (../shared/real-a2, see SOURCES.tsv); a function is the course's (`given`) when the same
normalised source appears in at least two independent students' files and it is not one the handout
asks the student to write (`todo`). Where a handout went out in two spellings (colourization.py and
colorization.py) both versions are kept. tests/test_locate.py checks them against
those files and against the starter-shaped examples in submissions/a2/.
"""
from __future__ import annotations

from grader.intake.roles import DATA, Role, Starter

# ---------------------------------------------------------------------------------- fingerprints

COLOURIZATION_2018 = Starter(
    name="the course's 2018 colourization.py starter",
    given=frozenset({
    "6c1ad6f4f5acb7e4",  # CNN.forward
    "5d510f761812019e",  # MyConv2d.__init__
    "94aaaae32b8378a4",  # MyConv2d.forward
    "81137e3020b193e0",  # MyConv2d.reset_parameters
    "d0a3bc28656d4471",  # MyDilatedConv2d.__init__
    "0d9476f86cb3a016",  # _get_rgb_cat
    "27988aca32285c09",  # _get_rgb_cat
    "2f09a003bb528eca",  # compute_loss
    "a1e423e0088d0563",  # compute_loss
    "029139f4abffc992",  # get_batch
    "7695e1e46fd24741",  # get_cat_rgb
    "e73d7662f3bbe6b2",  # get_cat_rgb
    "50a434475cb4e889",  # get_rgb_cat
    "8f5741132007a56f",  # get_rgb_cat
    "2ffdf700475cd933",  # get_torch_vars
    "b2459008e8a64965",  # get_torch_vars
    "2c9e5a881fcebb46",  # plot
    "0807e5c2d24effcc",  # process
    "ccb0f8a4934528ff",  # run_validation_step
}),
    todo=("CNN.__init__", "UNet.__init__", "UNet.forward", "MyDilatedConv2d.forward"),
)
COLOURIZATION_2019 = Starter(
    name="the course's 2019 colourization.ipynb starter",
    given=frozenset({
    "e81e01e422d00602",  # AttrDict.__init__
    "6c1ad6f4f5acb7e4",  # CNN.forward
    "5d510f761812019e",  # MyConv2d.__init__
    "94aaaae32b8378a4",  # MyConv2d.forward
    "81137e3020b193e0",  # MyConv2d.reset_parameters
    "0d9476f86cb3a016",  # _get_rgb_cat
    "5da7c5ad8ace086f",  # add_border
    "2f09a003bb528eca",  # compute_loss
    "54dc3f27d189298f",  # draw_activations
    "029139f4abffc992",  # get_batch
    "e73d7662f3bbe6b2",  # get_cat_rgb
    "3fafa11eeb4adcf3",  # get_file
    "8f5741132007a56f",  # get_rgb_cat
    "2ffdf700475cd933",  # get_torch_vars
    "a22b7b1a36efcba9",  # load_batch
    "0b5b0a8bc7fa0acd",  # load_cifar10
    "fb30d269fee9ed5e",  # plot
    "32ad238976b37217",  # process
    "b205176811eb6348",  # run_validation_step
    "d130841a4ada5244",  # toimage
    "f0943ff9ee88b46d",  # train
}),
    todo=("CNN.__init__", "UNet.__init__", "UNet.forward"),
)
REGRESSION_2018 = Starter(
    name="the course's 2018 colour_regression.py (provided whole)",
    given=frozenset({
    "56449ea20dd7475e",  # RegressionCNN.__init__
    "937a5b7352c55bf5",  # RegressionCNN.forward
    "386fd6adec89077d",  # get_torch_vars
    "4297a8cdb7829c81",  # get_torch_vars
    "d1e6dec75a4fda69",  # plot
    "ba1be1057f5bae37",  # train
}),
)
REGRESSION_2019 = Starter(
    name="the course's 2019 colour_regression.ipynb (provided whole)",
    given=frozenset({
    "e81e01e422d00602",  # AttrDict.__init__
    "5d510f761812019e",  # MyConv2d.__init__
    "94aaaae32b8378a4",  # MyConv2d.forward
    "81137e3020b193e0",  # MyConv2d.reset_parameters
    "e9350846ed14298d",  # RegressionCNN.__init__
    "937a5b7352c55bf5",  # RegressionCNN.forward
    "0d9476f86cb3a016",  # _get_rgb_cat
    "2f09a003bb528eca",  # compute_loss
    "029139f4abffc992",  # get_batch
    "e73d7662f3bbe6b2",  # get_cat_rgb
    "3fafa11eeb4adcf3",  # get_file
    "8f5741132007a56f",  # get_rgb_cat
    "386fd6adec89077d",  # get_torch_vars
    "a22b7b1a36efcba9",  # load_batch
    "0b5b0a8bc7fa0acd",  # load_cifar10
    "7bb033ff8f2d0702",  # plot
    "ffb8305ab7e750f6",  # process
    "01983c9f4b2ca556",  # run_validation_step
    "70bf0ccb9f35ac2c",  # train
}),
)
# Karpathy's min-char-rnn as the course handed it out (Python 2; Python 3 ports hash the same).
MIN_CHAR_RNN = Starter(
    name="the course's min-char-rnn.py starter",
    given=frozenset({
    "de4ad89d990a31c2",  # lossFun
    "8829e1b428785e38",  # sample
}),
    todo=("sample",),
)

# ------------------------------------------------------------------------------------------ roles

# The sampler and the completion under the names real submissions give them (older offerings
# included): `sample`, `sample_w_temp`, `sample_rnn`, `sample_temperature`, `temperature_sample`,
# `complete`, `complete_phrase`, `comp`, `generate_text`, ...
SAMPLER_NAMES = (r"sample\w*", r"\w*_?temperature\w*", r"\w*_temp", r"\w+_sample\w*")
COMPLETION_NAMES = (r"compl\w*", r"comp", r"generate\w*", r"continu\w*")

COLOURIZATION = Role(
    name="colourization", module="colourization",
    classes=("CNN", "UNet"),
    signatures={"CNN": ("kernel", "num_filters", "num_colours", "num_in_channels"),
                "UNet": ("kernel", "num_filters", "num_colours", "num_in_channels")},
    stems=("colourization", "colorization", "colourisation", "colorisation"),
    keywords=(r"colou?ri[sz]ation",), keyword_rank=1,
    required=True,
    expected="colourization.py/.ipynb (or colorization)",
    starters=(COLOURIZATION_2018, COLOURIZATION_2019),
)
REGRESSION = Role(
    name="regression", module="regression",
    classes=("RegressionCNN",),
    stems=("colourregression", "colorregression"),
    # tried first: `colorization_regression.py` is the regression file
    keywords=(r"regression",), keyword_rank=0,
    expected="colour_regression.py/.ipynb (or color_regression)",
    starters=(REGRESSION_2018, REGRESSION_2019),
)
RNN = Role(
    name="rnn", module="rnn",
    functions=("lossFun",),
    aliases=SAMPLER_NAMES + COMPLETION_NAMES,
    signatures={"sample": ("h", "seed_ix", "n", "alpha"), "complete": ("start", "n")},
    parts=(("lossFun",), SAMPLER_NAMES, COMPLETION_NAMES),
    stems=("mincharrnn",),
    keywords=(r"char.*rnn", r"^rnn"), keyword_rank=2,
    expected="min-char-rnn.py (or min_char_rnn, *char*rnn*, rnn*; .py/.ipynb), or any file that "
             "defines lossFun or a sampler/completion function",
    starters=(MIN_CHAR_RNN,),
)
ANSWERS = Role(
    name="answers", module="answers", kind=DATA,
    stems=("answers",), keywords=(r"answer",), suffixes=(".toml",),
    expected="answers.toml",
)

ROLES = (COLOURIZATION, REGRESSION, RNN, ANSWERS)

"""The roles of Assignment 2's submissions, as data for `grader.locate` (see `grader.roles`).

Each role is identified by the API the handout asks for; the file names are the handouts' own
(2018 scripts, 2019 notebooks) and only break ties.
"""
from __future__ import annotations

from grader.roles import DATA, Role

COLOURIZATION = Role(
    name="colourization", module="colourization",
    classes=("CNN", "UNet"),
    stems=("colourization", "colorization", "colourisation", "colorisation"),
    keywords=(r"colou?ri[sz]ation",), keyword_rank=1,
    required=True,
    expected="colourization.py/.ipynb (or colorization)",
)
REGRESSION = Role(
    name="regression", module="regression",
    classes=("RegressionCNN",),
    stems=("colourregression", "colorregression"),
    # tried first: `colorization_regression.py` is the regression file
    keywords=(r"regression",), keyword_rank=0,
    expected="colour_regression.py/.ipynb (or color_regression)",
)
RNN = Role(
    name="rnn", module="rnn",
    functions=("lossFun",),
    stems=("mincharrnn",),
    keywords=(r"char.*rnn", r"^rnn"), keyword_rank=2,
    expected="min-char-rnn.py (or min_char_rnn, *char*rnn*, rnn*; .py/.ipynb)",
)
ANSWERS = Role(
    name="answers", module="answers", kind=DATA,
    stems=("answers",), keywords=(r"answer",), suffixes=(".toml",),
    expected="answers.toml",
)

ROLES = (COLOURIZATION, REGRESSION, RNN, ANSWERS)

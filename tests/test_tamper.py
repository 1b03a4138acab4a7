"""The trusted side's static cross-checks of a submission's source: the tamper scan (grader.intake.tamper)
and the 'uses MyConv2d' check's search for torch convolutions (rubric.a2.sourcecheck)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.examples import PROJECT, list_examples, materialize
from grader.intake.unpack import load_submission
from grader.intake.tamper import scan, scan_files
from rubric.a2.sourcecheck import torch_convs_reached

HEADER = "import os, sys, builtins, inspect, gc\nimport numpy as np\nimport torch\nimport torch.nn as nn\n" \
         "import torch.nn.functional as F\n"


def found(code: str) -> list[str]:
    return [f.what for f in scan(HEADER + textwrap.dedent(code))]


@pytest.mark.parametrize("code, what", [
    ("import graderworker.a2", "imports the grader's worker runtime"),
    ("from graderworker import protocol", "imports the grader's worker runtime"),
    ("m = sys.modules['graderworker.a2']", "sys.modules"),
    ("f = sys._getframe(1).f_locals", "sys._getframe"),
    ("def f():\n    return inspect.currentframe().f_back", "inspect.currentframe"),
    ("from inspect import stack\nstack()", "inspect.stack"),
    ("objs = gc.get_objects()", "gc.get_objects"),
    ("os.write(int(sys.argv[-1]), b'x')", "os.write"),
    ("pipe = os.fdopen(os.dup(5), 'wb')", "os.fdopen"),
    ("os.listdir('/proc/self/fd')", "'/proc/self/fd'"),
    ("builtins.len = lambda o: 5", "replaces builtins.len"),
    ("__builtins__['len'] = print", "replaces builtins[...]"),
    ("setattr(builtins, 'len', print)", "setattr on builtins"),
    ("np.random.choice = lambda *a, **k: 0", "replaces numpy.random.choice"),
    ("F.cross_entropy = lambda *a, **k: 0", "replaces torch.nn.functional.cross_entropy"),
    ("torch.allclose = lambda *a, **k: True", "replaces torch.allclose"),
    ("nn.Conv2d = object", "replaces torch.nn.Conv2d"),
    ("class A:\n    np.array_equal = print", "replaces numpy.array_equal"),
])
def test_reaching_into_the_worker_is_found(code, what):
    """Each way into the worker that lets code make it report facts is found, with its line."""
    hits = found(code)
    assert any(what in h for h in hits), hits


@pytest.mark.parametrize("code", [
    "torch.backends.cudnn.benchmark = True",
    "np.float = float\nnp.int = int",
    # the Colab workaround of real 2019 notebooks (c19nb-nehcili): inside a function, restored after
    "def train():\n    old = np.load\n    np.load = lambda *a, **k: old(*a, allow_pickle=True, **k)\n"
    "    c = np.load('c.npy')\n    np.load = old",
    "sys.argv = ['-f']",
    "sys.path.insert(0, '.')\nsys.stdout = open('log.txt', 'w')",
    "os.environ['KMP_DUPLICATE_LIB_OK'] = 'True'",
    "np.random.seed(0)\ntorch.manual_seed(0)",
    "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)",
    "x = np.zeros(3)\nx[0] = 1\nnp_state = np.random.get_state()",
    "print(sys.version, os.getcwd(), inspect.signature(print))",
])
def test_ordinary_student_code_is_not_flagged(code):
    assert found(code) == []


def test_no_example_submission_is_flagged(tmp_path):
    """The reference, the alternative solution and every seeded-bug mutant are clean."""
    for example in list_examples("a2"):
        sub = load_submission(materialize(example, tmp_path / "subs"), tmp_path / "ws" / example.name, assignment="a2")
        assert scan_files(sub.workspace.glob("*.py")) == [], example.name


def test_identical_files_are_scanned_once(tmp_path):
    code = HEADER + "builtins.len = print\n"
    for name in ("rnn.py", "min_char_rnn.py"):
        (tmp_path / name).write_text(code)
    assert len(scan_files(tmp_path.glob("*.py"))) == 1


# ----------------------------------------------------------------------------- 'uses MyConv2d'

def test_torch_convolutions_reached_from_the_model_are_found():
    reached = torch_convs_reached
    reference = (PROJECT / "reference" / "a2" / "colourization.py").read_text()
    alternative = (PROJECT / "submissions" / "a2" / "alternative" / "colourization.py").read_text()
    for model in ("CNN", "UNet"):
        assert reached(reference, model) == [] and reached(alternative, model) == []
    helper = reference.replace("return nn.Sequential(MyConv2d(cin, cout, kernel), nn.MaxPool2d(2)",
                               "return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=1), nn.MaxPool2d(2)")
    assert [name for _, name in reached(helper, "CNN")] == ["nn.Conv2d"]      # through _down
    aliased = textwrap.dedent("""
        import torch.nn as nn
        from torch.nn import Conv2d as C
        LAYER = getattr(nn, "Conv2d")
        class MyConv2d(nn.Module):
            def __init__(self):
                self.inner = nn.Conv2d(1, 1, 3)      # inside the provided layer: not the model's
        class CNN(nn.Module):
            def __init__(self):
                self.a, self.b = C(1, 2, 3), LAYER(2, 2, 3)
                assert not isinstance(self.a, nn.Conv2d)
                self.c = MyConv2d()
    """)
    assert sorted(name for _, name in reached(aliased, "CNN")) == ["Conv2d", "Conv2d"]

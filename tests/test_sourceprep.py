"""grader.intake.sourceprep: what a prepared module keeps, skips, repairs, and where its lines end up."""
from __future__ import annotations

import textwrap

import pytest

from grader.intake.sourceprep import (MISSING_HELPER, decode_source, prepare, repair_print_statements,
                                      repair_python2)


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def run_module(text: str) -> dict:
    """Execute a *prepared* module the way the worker will: with the placeholder helper defined."""
    namespace = {"__name__": "student", MISSING_HELPER: lambda name: f"<missing {name}>"}
    exec(compile(text, "prepared.py", "exec"), namespace)
    return namespace


SCRIPT = src('''
    """Colourization, 2018 script version."""
    from __future__ import print_function
    import numpy as np
    import torch.nn as nn
    from google.colab import drive
    import matplotlib
    matplotlib.use('Agg')

    data = open('input.txt').read()
    chars = list(set(data))
    hidden_size = 100
    seq_length = 25
    bh = np.zeros((hidden_size, 1))
    Wxh = np.random.randn(hidden_size, 10) * 0.01
    char_to_ix = {ch: i for i, ch in enumerate(chars)}
    np.random.seed(0)
    try:
        import cPickle as pickle
    except ImportError:
        import pickle


    class AttrDict(dict):
        pass


    args = AttrDict()
    args.update({'kernel': 3, 'num_filters': 32})
    args.lr = 0.001


    @staticmethod
    def helper(x=hidden_size):
        return x


    def uses_missing(x=data):
        return x


    class CNN(nn.Module):
        def __init__(self, kernel, num_filters, num_colours):
            super().__init__()
            self.conv = nn.Conv2d(1, num_filters, kernel)


    def train(args):
        raise AssertionError("training must not run on import")


    train(args)
    cnn = train(args)
    while True:
        train(args)
    for epoch in range(25):
        pass
    with open('log.txt', 'w') as f:
        f.write('x')
    if __name__ == "__main__":
        train(args)
''')


def test_keeps_definitions_and_simple_values_and_skips_code_that_runs():
    prepared = prepare(SCRIPT, "colourization.py")
    assert prepared.error is None
    compile(prepared.source, "colourization.py", "exec")
    skipped = [s.text for s in prepared.skipped]
    for start in ("matplotlib.use", "data =", "chars =", "Wxh =", "char_to_ix =", "np.random.seed",
                  "train(args)", "cnn =", "while True:", "for epoch in range", "with open",
                  'if __name__ == "__main__":', "def uses_missing"):
        assert any(text.startswith(start) for text in skipped), start
    kept = prepared.source
    for line in ("hidden_size = 100", "bh = np.zeros((hidden_size, 1))", "class CNN(nn.Module):",
                 "args = AttrDict()", "args.update({'kernel': 3, 'num_filters': 32})",
                 "args.lr = 0.001", "@staticmethod", "    import cPickle as pickle",
                 "from __future__ import print_function"):
        assert line in kept.split("\n") or any(l.endswith(line) for l in kept.split("\n")), line


def test_reasons_tell_why():
    reasons = {s.text: s.reason for s in prepare(SCRIPT, "colourization.py").skipped}
    assert reasons["data = open('input.txt').read()"].startswith("calls open(")
    assert "`data`" in reasons["chars = list(set(data))"]
    assert reasons["np.random.seed(0)"] == "calls np.random.seed()"
    assert "comprehension" in reasons["char_to_ix = {ch: i for i, ch in enumerate(chars)}"]
    assert "entry point" in reasons['if __name__ == "__main__":']


def test_importing_the_prepared_module_runs_no_training_and_survives_missing_modules():
    namespace = run_module(prepare(SCRIPT, "colourization.py").source)
    assert namespace["drive"] == "<missing google.colab.drive>"          # not installed here
    assert namespace["hidden_size"] == 100 and namespace["args"]["kernel"] == 3
    assert namespace["args"].lr == 0.001
    assert "CNN" in namespace and "train" in namespace and "data" not in namespace


def test_every_kept_line_stays_on_its_line_number():
    prepared = prepare(SCRIPT, "colourization.py")
    original = SCRIPT.split("\n")
    out = prepared.source.split("\n")
    assert len(out) == len(original)
    for number, line in enumerate(out, start=1):
        if line and not line.startswith(("# [grader]", "with __import__")):
            assert line == original[number - 1], number
    assert prepared.line_map == list(range(1, len(prepared.line_map) + 1))
    # The guarded import sits on the import's own line.
    assert out[2].startswith("with __import__") and out[2].endswith("import numpy as np")
    assert MISSING_HELPER in out[2]


def test_multiline_import_and_semicolons():
    text = src('''
        from os.path import (join,
                             dirname)
        import os; import sys; os.system("echo hi")

        def f():
            return 1
    ''')
    prepared = prepare(text, "m.py")
    assert prepared.error is None
    lines = prepared.source.split("\n")
    assert lines[0].startswith("with __import__") and lines[1].strip() == "dirname)"
    # Three statements on line 3 become two guarded imports on lines 3-4; the blank line 4 absorbs
    # the extra line, so `def f` is still on line 5.
    assert lines[4] == "def f():" and prepared.line_map[4] == 5
    assert [s.reason for s in prepared.skipped] == ["calls os.system()"]
    namespace = run_module(prepared.source)
    assert namespace["f"]() == 1 and callable(namespace["join"])


def test_a_broken_module_import_does_not_stop_the_rest():
    prepared = prepare("import no_such_module_xyz as m\nfrom no_such_pkg import a, b as c\nx = 1\n", "m.py")
    namespace = run_module(prepared.source)
    assert namespace["m"] == "<missing no_such_module_xyz>"
    assert namespace["c"] == "<missing no_such_pkg.b>" and namespace["x"] == 1


def test_imports_work_even_when_no_placeholder_helper_is_defined():
    prepared = prepare("import json\nimport no_such_module_xyz\n", "m.py")
    namespace = {"__name__": "student"}                       # e.g. a TA importing the file by hand
    exec(compile(prepared.source, "m.py", "exec"), namespace)
    assert namespace["json"].__name__ == "json" and namespace["no_such_module_xyz"] is None


def test_try_block_kept_only_when_everything_in_it_is_keepable():
    kept = prepare("try:\n    import cPickle as pickle\nexcept ImportError:\n    import pickle\n", "m.py")
    assert not kept.skipped and run_module(kept.source)["pickle"].__name__ == "pickle"
    skipped = prepare("try:\n    train()\nexcept Exception:\n    pass\n", "m.py")
    assert len(skipped.skipped) == 1 and "try block" in skipped.skipped[0].reason


def test_allow_list_of_calls():
    text = src('''
        import numpy as np
        import torch
        import torch.nn as nn
        layer = nn.Conv2d(1, 8, 3, padding=1)
        loss = torch.nn.CrossEntropyLoss()
        zeros = np.zeros((2, 2))
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        names = ", ".join(['a', 'b'])
        act = lambda x: x.relu()
        bad1 = torch.load('ckpt.pt')
        bad2 = nn.functional.relu(zeros)
        bad3 = np.load('x.npy')
    ''')
    prepared = prepare(text, "m.py")
    assert [s.text.split(" =")[0] for s in prepared.skipped] == ["bad1", "bad2", "bad3"]


def test_python2_print_statements_are_repaired():
    text = src('''
        import sys
        def report(n, loss):
            print 'iter %d, loss: %f' % (n, loss)
            print >>sys.stderr, "done",
            print
        print "a", 1
    ''')
    prepared = prepare(text, "min-char-rnn.py")
    assert prepared.error is None and prepared.repairs and "print" in prepared.repairs[0]
    assert "    print('iter %d, loss: %f' % (n, loss))" in prepared.source
    assert '    print("done", end=" ", file=sys.stderr)' in prepared.source
    assert "    print()" in prepared.source
    assert len(prepared.source.split("\n")) == len(text.split("\n"))


def test_print_used_as_a_name_is_left_alone():
    assert repair_print_statements("print = log\nx = print\n") is None
    fixed, lines = repair_print_statements('print "x" % (1,\n   2)\n')
    assert fixed == 'print("x" % (1,\n   2))\n' and lines == [1]


def test_tabs_mixed_with_spaces_are_expanded_like_python2():
    text = "def f(x):\n    if x:\n\treturn 1\n    return 0\n"
    fixed, notes = repair_python2(text)
    assert "tabs" in notes[0] and "        return 1" in fixed


def test_unrepairable_syntax_error_names_the_file_and_line():
    prepared = prepare("x = 1\n\ndef f(:\n    pass\n", "colourization.py")
    assert prepared.error.startswith("SyntaxError in colourization.py line 3: ")
    assert "(Python 3 is required)" in prepared.error and prepared.source == ""
    nested = prepare("x = " + "(" * 300 + ")" * 300 + "\n", "colourization.py")
    assert nested.error and "line 1" in nested.error
    assert prepare("x = 1\0\n", "a.py").error                    # NUL bytes: not a text file


def test_hostile_deep_expression_is_an_error_not_a_crash():
    prepared = prepare("x = " + "1+" * 50000 + "1\n", "colourization.py")
    assert prepared.error and "colourization.py" in prepared.error


def test_future_import_stays_first_and_compiles():
    prepared = prepare('"""doc"""\nfrom __future__ import annotations\nimport os\ndef f(x: Missing): pass\n', "m.py")
    assert prepared.error is None and prepared.source.split("\n")[1] == "from __future__ import annotations"
    assert not prepared.skipped                          # annotations are not evaluated


@pytest.mark.parametrize("data,expected,noted", [
    ("x = 'é'\n".encode("utf-8"), "x = 'é'\n", False),
    ("\ufeffx = 1\r\n".encode("utf-8"), "x = 1\n", False),
    ("# -*- coding: latin-1 -*-\nx = 'é'\n".encode("latin-1"), "# -*- coding: utf-8 -*-\nx = 'é'\n", False),
    ("x = 'é'\n".encode("cp1252"), "x = 'é'\n", True),
])
def test_decode_source(data, expected, noted):
    text, note = decode_source(data)
    assert text == expected and bool(note) == noted


def test_a_script_saved_as_an_html_page_is_unescaped():
    page = ('<!DOCTYPE html>\n<html>\n<body>\n<pre>&quot;&quot;&quot;Colourization.&quot;&quot;&quot;\n'
            'import numpy as np\n\ndef f(a, b):\n    return a &lt; b and b &gt; 0\n\n'
            "print(&#39;training&#39;)\n</pre>\n</body>\n</html>\n")
    prepared = prepare(page, "colourization.py")
    assert prepared.error is None and "HTML-escaped" in prepared.repairs[0]
    lines = prepared.source.split("\n")
    assert lines[0] == '"""Colourization."""' and lines[4] == "    return a < b and b > 0"
    # Escapes inside code that already parses are the student's own text: left alone.
    assert prepare("s = '&lt;b&gt;'\n", "m.py").source == "s = '&lt;b&gt;'\n"


def test_a_class_body_that_uses_a_skipped_name_is_skipped_with_its_reason():
    text = src('''
        import torch.nn as nn
        colours = open('colours.npy').read()
        class Config:
            n = len(colours)
        class CNN(nn.Module):
            criterion = nn.CrossEntropyLoss()
            loss = criterion
            def forward(self, x, scale=2):
                return x * scale
    ''')
    prepared = prepare(text, "m.py")
    assert [s.text for s in prepared.skipped] == ["colours = open('colours.npy').read()", "class Config:"]
    assert "`colours`" in prepared.skipped[1].reason


def test_comments_are_removed_and_every_line_stays_in_place():
    text = src('''
        # Jane Doe, 1001234567: my own work
        import numpy as np  # numerics
        URL = "http://example.org/#anchor"   # a '#' inside a string is not a comment
        def f(x):
            # the docstring below is code, not a comment
            """Doubles # x."""
            return 2 * x  # twice
        ''')
    prepared = prepare(text, "mine.py")
    lines = prepared.source.split("\n")
    assert "#" not in prepared.source.replace("/#anchor", "").replace("Doubles # x", "")
    assert lines[2] == 'URL = "http://example.org/#anchor"'
    assert lines[5].strip() == '"""Doubles # x."""' and lines[6] == "    return 2 * x"
    assert len(lines) == len(text.split("\n"))
    assert run_module(prepared.source)["f"](3) == 6


def test_files_that_differ_only_in_comments_prepare_to_the_same_bytes():
    body = "import numpy as np\n\ndef f(x):\n    return np.tanh(x)\n"
    a = prepare("# student A, roll 17\n" + body.replace("(x)\n", "(x)  # squash\n"), "a.py").source
    b = prepare("# -*- coding: utf-8 -*-\n" + body, "b.py").source
    assert a == b
    assert prepare("\n" + body, "c.py").source == a
    assert prepare(body, "d.py").source != a        # a line fewer: other line numbers, other bytes


def test_the_graders_own_markers_stay():
    text = "# %% [cell 3]\nx = 1\ntrain()\n"
    prepared = prepare(text, "nb.py").source
    assert prepared.startswith("# %% [cell 3]\n") and "# [grader] skipped: train()" in prepared

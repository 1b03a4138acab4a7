"""grader.intake.notebook: real notebooks (nbformat) into one module, with cell-numbered notes and errors."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat import v3
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from grader.intake.notebook import describe_line, notebook_to_module
from grader.intake.sourceprep import prepare


def nb_text(*cells, python2: bool = False) -> str:
    nb = new_notebook(cells=list(cells))
    if python2:
        nb.metadata["kernelspec"] = {"name": "python2", "display_name": "Python 2", "language": "python"}
    return nbformat.writes(nb)


def test_magics_shell_and_training_cells():
    text = nb_text(
        new_markdown_cell("# Colourization"),                                   # cell 1
        new_code_cell("!pip install torch\n%matplotlib inline\n%cd /content/drive\nimport numpy as np"),
        new_code_cell("%%bash\nwget http://example.com/data.tar.gz\ntar xf data.tar.gz"),  # cell 3
        new_code_cell("%%time\nclass CNN(object):\n    pass"),                   # cell 4
        new_code_cell("files = !ls\nget_ipython().system('nvidia-smi')\nnp.zeros?"),
        new_code_cell("for i in range(2):\n    !echo {i}\n    %time x = i"),    # cell 6
        new_raw_cell("raw text is not code"),
        new_code_cell("args = {'gpu': True}\ncnn = train(args)"),               # cell 8
    )
    module = notebook_to_module(text, "colourization.ipynb")
    assert module.error is None and not module.cell_errors
    dropped = "\n".join(module.dropped)
    for expected in ("cell 2, line 1: `!pip install torch`", "cell 2, line 2: `%matplotlib inline`",
                     "cell 2, line 3: `%cd /content/drive`", "cell 3: the whole `%%bash` cell",
                     "cell 4, line 1: `%%time` (its Python body is kept)", "cell 5, line 1: `files = !ls`",
                     "cell 5, line 2: `get_ipython().system('nvidia-smi')`", "cell 5, line 3: `np.zeros?`",
                     "cell 6, line 2: `!echo {i}`", "cell 6, line 3: `%time x = i`"):
        assert expected in dropped
    assert "wget" not in module.source and "raw text" not in module.source
    prepared = prepare(module.source, "colourization.ipynb", where=module.where)
    assert prepared.error is None
    compile(prepared.source, "colourization.ipynb", "exec")
    skipped = {module.where(s.lineno): s.text for s in prepared.skipped}
    assert skipped["cell 8, line 2"] == "cnn = train(args)"
    assert skipped["cell 6, line 1"] == "for i in range(2):"
    assert "class CNN(object):" in prepared.source


def test_cell_numbers_count_every_cell_and_markers_map_lines_back():
    text = nb_text(new_markdown_cell("intro"), new_code_cell("import os"), new_markdown_cell("more"),
                   new_code_cell("x = 1\n\ndef f():\n    return undefined_name"))
    module = notebook_to_module(text, "colourization.ipynb")
    prepared = prepare(module.source, "colourization.ipynb", where=module.where)
    lines = prepared.source.split("\n")
    lineno = lines.index("    return undefined_name") + 1
    assert module.where(lineno) == "cell 4, line 4"
    assert describe_line(prepared.source, lineno) == "cell 4, line 4"     # from the prepared file alone


def test_html_escaped_code_is_unescaped_only_when_that_makes_it_parse():
    text = nb_text(
        new_code_cell("def f(a, b):\n    if a &lt; b and b &gt; 0:\n        return a &amp; b\n    return 0"),
        new_code_cell("s = '&lt;b&gt;'  # valid Python: leave it alone"),
    )
    module = notebook_to_module(text, "colourization.ipynb")
    assert "    if a < b and b > 0:" in module.source and "return a & b" in module.source
    assert "s = '&lt;b&gt;'" in module.source
    assert len(module.repairs) == 1 and module.repairs[0].startswith("cell 1: its code was HTML-escaped")


def test_python2_prints_are_repaired_per_cell():
    text = nb_text(new_code_cell("print 'loss', 0.5\nfor i in range(3):\n    print i,"),
                   new_code_cell("def sample(h):\n    print h\n    return h"), python2=True)
    module = notebook_to_module(text, "min-char-rnn.ipynb")
    assert module.error is None and not module.cell_errors
    assert "print('loss', 0.5)" in module.source and '    print(i, end=" ")' in module.source
    assert [r.split(":")[0] for r in module.repairs] == ["cell 1", "cell 2"]
    assert any("Python 2 kernel" in n for n in module.notes)


def test_unrepairable_cell_is_left_out_with_its_cell_and_line():
    text = nb_text(new_markdown_cell("x"), new_code_cell("import os"),
                   new_code_cell("x = 1\ny = 2\nprint x y"), new_code_cell("def f():\n    return 1"))
    module = notebook_to_module(text, "colourization.ipynb")
    assert module.error is None
    assert len(module.cell_errors) == 1
    assert module.cell_errors[0].startswith("SyntaxError in colourization.ipynb, cell 3, line 3: ")
    assert "(Python 3 is required)" in module.cell_errors[0] and "print x y" in module.cell_errors[0]
    assert "def f():" in module.source and "x = 1" not in module.source


def test_a_notebook_with_no_parsable_cell_is_an_error():
    module = notebook_to_module(nb_text(new_code_cell("def f(:\n  pass"), new_code_cell("class (")),
                                "colourization.ipynb")
    assert module.error.startswith("SyntaxError in colourization.ipynb, cell 1, line 1")
    assert "and 1 more cell" in module.error and module.source == ""


def test_magic_lookalikes_inside_strings_are_kept():
    text = nb_text(new_code_cell("s = '''\n%d items\n!important\n'''\nt = 1"))
    module = notebook_to_module(text, "colourization.ipynb")
    assert "%d items" in module.source and "!important" in module.source and not module.dropped


def test_nbformat_v3_notebook():
    nb = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[
        v3.new_code_cell(input="import os\nx = 1"),
        v3.new_text_cell("markdown", source="hi"),
        v3.new_code_cell(input="def f():\n    return x"),
    ])])
    module = notebook_to_module(nbformat.writes(nb, version=3), "colourization.ipynb")
    assert module.error is None and "def f():" in module.source
    assert "# %% [cell 3]" in module.source


def test_broken_json_is_a_clear_error():
    good = nb_text(new_code_cell("x = 1"))
    broken = good.replace('"cell_type"', '"cell_type" "code",', 1)
    module = notebook_to_module(broken, "colourization.ipynb")
    assert module.error.startswith("colourization.ipynb is not a valid notebook: its JSON is broken at line")
    assert "column" in module.error and "save it again" in module.error


def test_slightly_off_notebooks_are_tolerated():
    good = nb_text(new_code_cell("x = 1"))
    module = notebook_to_module("\ufeff" + good + "\n\x00garbage", "colourization.ipynb")
    assert module.error is None and "x = 1" in module.source
    assert any("ignored" in n for n in module.notes)
    # No nbformat version, sources as plain strings, a missing key: read by hand.
    bare = json.dumps({"cells": [{"cell_type": "code", "source": "y = 2"}]})
    assert "y = 2" in notebook_to_module(bare, "colourization.ipynb").source
    wrong = notebook_to_module(json.dumps([1, 2]), "colourization.ipynb")
    assert "expected a JSON object" in wrong.error


def test_a_python_script_saved_as_ipynb_is_read_as_a_script():
    module = notebook_to_module("import os\n\ndef f():\n    return 1\n", "colourization.ipynb")
    assert module.error is None and module.source.startswith("import os")
    assert module.where(3) == "line 3" and "Python script" in module.notes[0]


def test_a_late_future_import_goes_first_and_the_rest_is_graded():
    """The course's 2019 starter has `from __future__ import print_function` in cell 10: legal in
    Jupyter (each cell is compiled on its own), a SyntaxError in one module unless moved."""
    text = nb_text(new_code_cell("import numpy as np"),                                   # cell 1
                   new_markdown_cell("## Helpers"),
                   new_code_cell("from __future__ import print_function\nimport os\n\ndef f():\n    return os.sep"),
                   new_code_cell("import sys; from __future__ import division"),           # cell 4
                   new_code_cell("def g():\n    return undefined_name"))
    module = notebook_to_module(text, "colourization.ipynb")
    assert module.error is None and not module.cell_errors
    assert module.source.split("\n")[1] == "from __future__ import print_function, division"
    assert any("cell 3: `from __future__ import print_function` was moved" in r for r in module.repairs)
    prepared = prepare(module.source, "colourization.ipynb", where=module.where)
    assert prepared.error is None
    compile(prepared.source, "colourization.ipynb", "exec", dont_inherit=True)
    lines = prepared.source.split("\n")
    assert module.where(lines.index("def f():") + 1) == "cell 3, line 4"          # no line moved
    assert module.where(lines.index("    return undefined_name") + 1) == "cell 5, line 2"
    assert "import sys; pass" in module.source


def test_a_cell_that_does_not_compile_is_left_out_alone_with_its_cell_named():
    text = nb_text(new_code_cell("class CNN(object):\n    pass"),                         # cell 1
                   new_code_cell("x = 1\nreturn x"),                                     # parses, does not compile
                   new_code_cell("from __future__ import braces_maybe"),                 # unknown feature
                   new_code_cell("def half(:\n    pass"),                               # half-written
                   new_code_cell("def unet():\n    return 2"))
    module = notebook_to_module(text, "colourization.ipynb")
    assert module.error is None
    errors = "\n".join(module.cell_errors)
    assert "colourization.ipynb, cell 2, line 2: 'return' outside function" in errors
    assert "colourization.ipynb, cell 3" in errors and "colourization.ipynb, cell 4, line 1" in errors
    assert "the other cells were graded" in errors
    prepared = prepare(module.source, "colourization.ipynb", where=module.where)
    assert prepared.error is None and "class CNN" in prepared.source and "def unet" in prepared.source


def test_a_percent_continuing_a_statement_is_the_modulo_operator_not_a_magic():
    """Seen in a real 2019 notebook: the `%` of a format string on the next line of a print call."""
    text = nb_text(new_code_cell("for epoch in range(2):\n    print(\n        'Epoch [%d/%d]'\n"
                                 "        % (epoch + 1, 2)\n    )\n%time y = 1\nz = (1 +\n     2) \\\n    % 3"))
    module = notebook_to_module(text, "colourization.ipynb")
    assert module.error is None and not module.cell_errors
    assert "        % (epoch + 1, 2)" in module.source and "    % 3" in module.source
    assert [d for d in module.dropped] == ["cell 1, line 6: `%time y = 1`"]


REAL_A2 = Path(__file__).resolve().parent.parent.parent / "shared" / "real-a2"


@pytest.mark.course_data
def test_real_2019_notebooks_are_read_cell_by_cell():
    """Every real 2019 Colab notebook (late `__future__` import, Python 2 kernel, `!pip` cells)
    becomes a module that compiles and defines the models; nothing is refused whole."""
    notebooks = sorted(REAL_A2.glob("c19nb-*/colourization*.ipynb"))
    if not notebooks:
        pytest.skip(f"the real submissions are not at {REAL_A2}")
    for path in notebooks:
        module = notebook_to_module(path.read_bytes(), path.name)
        assert module.error is None, (path, module.error)
        assert not module.cell_errors, (path, module.cell_errors)
        assert "print_function" in module.futures
        prepared = prepare(module.source, path.name, where=module.where)
        assert prepared.error is None, (path, prepared.error)
        compile(prepared.source, path.name, "exec", dont_inherit=True)
        assert "class CNN(" in prepared.source and "class UNet(" in prepared.source

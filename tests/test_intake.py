"""grader.intake.unpack and grader.intake.locate on real zips, folders and notebooks built in tmp_path."""
from __future__ import annotations

import io
import os
import runpy
import stat
import struct
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from classkit import zip_bytes
from grader.intake.unpack import IntakeError, ZipLimits, _Unpacker, load_submission, student_id_from_name
from grader.intake.locate import FileEntry, locate, role_of_name
from grader.intake.roles import roles_for
from grader.intake.sourceprep import MISSING_HELPER

COLOURIZATION = '''\
import numpy as np
import torch.nn as nn
from student_helpers_q2 import helper


class CNN(nn.Module):
    def __init__(self, kernel, num_filters, num_colours):
        super().__init__()
        self.k = helper(kernel)


def train(args):
    raise AssertionError("training ran on import")


args = {"kernel": 3}
train(args)
'''
RNN = '''\
import numpy as np
data = open('input.txt', 'r').read()
hidden_size = 100
def lossFun(inputs, targets, hprev):
    print 'loss'
    return 0
while True:
    pass
'''


def nb_text(*sources: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_markdown_cell("# A2")] + [new_code_cell(s) for s in sources]))


def write_zip(path: Path, files: dict, compression=zipfile.ZIP_DEFLATED) -> Path:
    """files: name -> str | bytes | (ZipInfo-like date_time, content)."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, content in files.items():
            if isinstance(content, tuple):
                date_time, content = content
                info = zipfile.ZipInfo(name, date_time=date_time)
                info.compress_type = compression
                zf.writestr(info, content)
            else:
                zf.writestr(name, content)
    return path


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def intake(tmp_path: Path, source: Path, **kwargs):
    """Run intake; assert that nothing was written outside the workspace and .raw/ is gone."""
    workspace = tmp_path / "ws"
    before = snapshot(tmp_path)
    kwargs.setdefault("assignment", "a2")
    sub = load_submission(source, workspace, **kwargs)
    after = {p for p in snapshot(tmp_path) if p != "ws" and not p.startswith("ws" + os.sep)}
    assert after == before, "intake wrote outside its workspace"
    assert not (workspace / ".raw").exists()
    if sub.error:
        assert not any(workspace.iterdir()) and sub.modules == {}
    return sub


def notes(sub) -> str:
    return "\n".join(sub.notes)


# --------------------------------------------------------------------------------------------------
# The four kinds of input
# --------------------------------------------------------------------------------------------------

def test_zip_with_single_top_folder_and_junk(tmp_path, monkeypatch):
    source = write_zip(tmp_path / "CS17BTECH11001_Assign2.zip", {
        "CS17BTECH11001_Assign2/colourization.py": COLOURIZATION,
        "CS17BTECH11001_Assign2/student_helpers_q2.py": "def helper(k):\n    return k * 2\n",
        "CS17BTECH11001_Assign2/min-char-rnn.py": RNN,
        "CS17BTECH11001_Assign2/answers.toml": 'q1 = "RGB channels are correlated"\n',
        "CS17BTECH11001_Assign2/report.pdf": b"%PDF-1.4",
        "__MACOSX/CS17BTECH11001_Assign2/._colourization.py": b"\x00\x05\x16\x07junk",
        "CS17BTECH11001_Assign2/.DS_Store": b"junk",
        "CS17BTECH11001_Assign2/.ipynb_checkpoints/colourization-checkpoint.ipynb": nb_text("x = 1"),
    })
    sub = intake(tmp_path, source)
    ws = tmp_path / "ws"
    assert sub.error is None and sub.student == "CS17BTECH11001"
    assert sub.modules == {"colourization": ws / "colourization.py", "rnn": ws / "rnn.py"}
    assert sub.answers == ws / "answers.toml" and sub.role_errors == {}
    assert sorted(p.name for p in ws.iterdir()) == [
        "answers.toml", "colourization.py", "rnn.py", "student_helpers_q2.py"]
    text = notes(sub)
    assert "colourization: using CS17BTECH11001_Assign2/colourization.py (exact name)" in text
    assert "regression: no file found" in text and "report.pdf" in text and "__MACOSX" in text
    assert "line 17 `train(args)` (calls train())" in text
    assert "Python 2 print statements" in text
    # Importing the prepared module (as the worker will) defines CNN, runs no training, and finds
    # the sibling module.
    monkeypatch.syspath_prepend(str(ws))
    namespace = runpy.run_path(str(ws / "colourization.py"), {MISSING_HELPER: lambda n: None})
    assert namespace["CNN"].__name__ == "CNN" and namespace["helper"](3) == 6


def test_folder_py_and_ipynb_inputs(tmp_path):
    folder = tmp_path / "CS17B1001_Assign2"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "colorization.py").write_text(COLOURIZATION)
    (folder / "code" / "model.pt").write_bytes(b"\x80\x02weights")
    sub = intake(tmp_path, folder)
    assert sub.error is None and sub.student == "CS17B1001" and "colourization" in sub.modules
    assert "code/model.pt" in notes(sub)

    script = tmp_path / "min_char_rnn.py"
    script.write_text(RNN)
    sub = load_submission(script, tmp_path / "ws2", assignment="a2")
    assert sub.error is None and set(sub.modules) == {"rnn"} and sub.student == "min_char_rnn"

    nb = tmp_path / "CS17B1002_colourization.ipynb"
    nb.write_text(nb_text("%matplotlib inline\nimport torch", "class CNN(object):\n    pass",
                          "cnn = train(args)"))
    sub = load_submission(nb, tmp_path / "ws3", assignment="a2")
    assert sub.error is None and sub.student == "CS17B1002"
    text = notes(sub)
    assert "cell 2, line 1: `%matplotlib inline`" in text and "cell 4, line 1 `cnn = train(args)`" in text
    assert "class CNN(object):" in sub.modules["colourization"].read_text()


def test_workspace_must_be_new_or_empty_and_path_must_exist(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "old.py").write_text("x = 1")
    source = write_zip(tmp_path / "a.zip", {"colourization.py": "x = 1"})
    with pytest.raises(ValueError):
        load_submission(source, ws, assignment="a2")
    with pytest.raises(FileNotFoundError):
        load_submission(tmp_path / "missing.zip", tmp_path / "ws2", assignment="a2")
    folder = tmp_path / "sub"
    folder.mkdir()
    with pytest.raises(ValueError):
        load_submission(folder, folder / "ws", assignment="a2")


# --------------------------------------------------------------------------------------------------
# Archive shapes
# --------------------------------------------------------------------------------------------------

def test_nested_zips(tmp_path):
    inner = zip_bytes({"colourization.py": COLOURIZATION})
    middle = zip_bytes({"code.zip": inner, "answers.toml": "q = 1\n"})
    sub = intake(tmp_path, write_zip(tmp_path / "CS17B1001_Assign2.zip", {"CS17B1001_Assign2.zip": middle}))
    assert sub.error is None and "colourization" in sub.modules and sub.answers
    assert "CS17B1001_Assign2.zip/code.zip/colourization.py" in notes(sub)


def test_nesting_deeper_than_the_limit_is_refused(tmp_path):
    data = zip_bytes({"colourization.py": "x = 1"})
    for level in range(4):
        data = zip_bytes({f"level{level}.zip": data})
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"top.zip": data}))
    assert "nested more than 3 deep" in sub.error


def test_backslash_names(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"CS17B1001\\code\\colourization.py": COLOURIZATION}))
    assert sub.error is None and "using CS17B1001/code/colourization.py" in notes(sub)


def test_non_utf8_names(tmp_path):
    raw = bytearray(zip_bytes({"XXbung/colourization.py": "x = 1\n", "Ybung/min-char-rnn.py": RNN}))
    # 'Übung' as UTF-8 without the UTF-8 flag (macOS, 7-Zip), and 'Übung' in cp1252 (Windows).
    raw = raw.replace(b"XXbung", "Übung".encode("utf-8")).replace(b"Ybung", "Übung".encode("cp1252"))
    path = tmp_path / "s.zip"
    path.write_bytes(bytes(raw))
    sub = intake(tmp_path, path)
    assert sub.error is None and set(sub.modules) == {"colourization", "rnn"}
    assert "Übung/colourization.py" in notes(sub)
    assert "bung/min-char-rnn.py" in notes(sub)          # cp1252 byte shown as its cp437 reading


# --------------------------------------------------------------------------------------------------
# Refused archives
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("../evil.py", "leaves the archive"),
    ("code/../../evil.py", "leaves the archive"),
    ("/tmp/evil.py", "absolute path"),
    ("C:\\Users\\evil.py", "absolute path"),
    ("C:/evil.py", "absolute path"),
])
def test_path_traversal_is_refused(tmp_path, name, expected):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"colourization.py": "x = 1", name: "x = 2"}))
    assert expected in sub.error and not (tmp_path / "evil.py").exists()


def test_symlink_entry_is_refused(tmp_path):
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("colourization.py", "x = 1")
        link = zipfile.ZipInfo("answers.toml")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    sub = intake(tmp_path, path)
    assert "symbolic link (answers.toml)" in sub.error


def test_symlink_in_a_folder_is_refused(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "colourization.py").write_text("x = 1")
    (folder / "answers.toml").symlink_to("/etc/passwd")
    assert "symbolic link" in intake(tmp_path, folder).error


def _patch_sizes(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of the (only) entry in its local and central headers."""
    out = bytearray(data)
    struct.pack_into("<I", out, 22, size)
    central = out.find(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def test_zip_bomb_by_ratio(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"colourization.py": b"#" * (3 * 2**20)}))
    assert "zip bomb" in sub.error and "expand" in sub.error


def test_zip_bomb_by_declared_total(tmp_path):
    files = {f"f{i}.py": b"x = 1\n" * 2000 for i in range(5)}
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", files), limits=ZipLimits(max_total_bytes=40_000))
    assert "unpacks to more than" in sub.error


def test_headers_that_lie_are_caught(tmp_path):
    honest = zip_bytes({"colourization.py": b"x = 1\n" * 50_000})
    small = tmp_path / "small.zip"                           # declares 100 bytes, holds 300 kB
    small.write_bytes(_patch_sizes(honest, 100))
    sub = intake(tmp_path, small)
    assert "corrupt" in sub.error and "colourization.py" in sub.error
    huge = tmp_path / "huge.zip"                             # declares 3 GB: refused before extracting
    huge.write_bytes(_patch_sizes(honest, 3 * 2**30))
    sub = load_submission(huge, tmp_path / "ws2", assignment="a2")
    assert "zip bomb" in sub.error
    sub = load_submission(huge, tmp_path / "ws3", limits=ZipLimits(max_ratio=1e12), assignment="a2")
    assert "the limit for one file is 50.0 MiB" in sub.error


def test_bytes_are_counted_while_extracting(tmp_path):
    # zipfile itself stops at the declared size; this checks our own count, which does not rely on it.
    unpacker = _Unpacker(tmp_path / "raw", ZipLimits(max_file_bytes=1000))
    chunks = iter([b"x" * 600, b"x" * 600, b""])
    with pytest.raises(IntakeError, match="larger than the archive says"):
        unpacker._stream(lambda n: next(chunks), io.BytesIO(), "colourization.py", declared=700)
    chunks = iter([b"x" * 600, b"x" * 600, b""])
    with pytest.raises(IntakeError, match="the limit for one file"):
        unpacker._stream(lambda n: next(chunks), io.BytesIO(), "colourization.py", declared=None)


def test_too_many_files(tmp_path):
    files = {f"f{i}.txt": "x" for i in range(11)} | {"colourization.py": "x = 1"}
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", files), limits=ZipLimits(max_files=10))
    assert "more than 10 files" in sub.error


def test_encrypted_entry_is_refused(tmp_path):
    data = bytearray(zip_bytes({"colourization.py": "x = 1\n"}))
    data[6] |= 0x1                                           # general purpose flag, local header
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1                                 # and central directory
    path = tmp_path / "s.zip"
    path.write_bytes(bytes(data))
    assert "password-protected" in intake(tmp_path, path).error


def test_corrupt_archives(tmp_path):
    good = zip_bytes({"colourization.py": COLOURIZATION * 20})
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    assert "not a valid zip archive" in intake(tmp_path, truncated).error

    damaged = bytearray(good)
    start = 30 + len("colourization.py")
    for i in range(start + 10, start + 40):
        damaged[i] ^= 0xFF
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(damaged))
    sub = load_submission(path, tmp_path / "ws2", assignment="a2")
    assert "corrupt" in sub.error and "Create the zip again" in sub.error

    rar = tmp_path / "CS17B1001_Assign2.zip"
    rar.write_bytes(b"Rar!\x1a\x07\x00" + b"\x00" * 100)
    assert "it is a RAR file" in load_submission(rar, tmp_path / "ws3", assignment="a2").error
    other = tmp_path / "submission.rar"
    other.write_bytes(b"Rar!\x1a\x07\x00")
    assert "expected a .zip, .py or .ipynb file" in load_submission(other, tmp_path / "ws4", assignment="a2").error


def test_empty_submissions(tmp_path):
    assert "empty" in intake(tmp_path, write_zip(tmp_path / "a.zip", {})).error
    only_junk = write_zip(tmp_path / "b.zip", {"__MACOSX/._x": "j", ".DS_Store": "j"})
    assert "empty" in load_submission(only_junk, tmp_path / "ws2", assignment="a2").error
    only_pdf = write_zip(tmp_path / "c.zip", {"report.pdf": "%PDF", "plot.png": "png"})
    error = load_submission(only_pdf, tmp_path / "ws3", assignment="a2").error
    assert "no .py, .ipynb or answers.toml file; found: report.pdf, plot.png" in error


def test_wrong_names_say_what_was_expected_and_found(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"main.py": "x = 1", "notes.txt": "hi"}))
    assert sub.error.startswith("none of the expected files was found (expected colourization.py/.ipynb")
    assert "answers.toml" in sub.error and sub.error.endswith("found: main.py, notes.txt")


# --------------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("colourization.py", ("colourization", 0)),
    ("Colorization.IPYNB", ("colourization", 0)),
    ("colourisation.py", ("colourization", 0)),
    ("Colourization (1).ipynb", ("colourization", 1)),
    ("colourization - Copy.py", ("colourization", 1)),
    ("a2_colourization.py", ("colourization", 2)),
    ("colour_regression.py", ("regression", 0)),
    ("color_regression.ipynb", ("regression", 0)),
    ("colorization_regression.py", ("regression", 2)),
    ("min-char-rnn.py", ("rnn", 0)),
    ("min_char_rnn.ipynb", ("rnn", 0)),
    ("char_rnn_temperature.py", ("rnn", 2)),
    ("rnn.py", ("rnn", 2)),
    ("answers.toml", ("answers", 0)),
    ("my_answers.toml", ("answers", 2)),
    ("colourization.txt", None),
    ("train.py", None),
])
def test_role_of_name(name, expected):
    assert role_of_name(name, roles_for("a2")) == expected


def test_several_candidates_choose_deterministically_and_say_why(tmp_path):
    # Every candidate holds the student's own CNN, so the names, folders and dates decide.
    own_cnn = "class CNN:\n    def __init__(self, k, nf, nc):\n        self.k = k"
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "a2_colourization.py": COLOURIZATION,
        "old/colourization.py": COLOURIZATION,
        "Colourization (1).ipynb": nb_text(own_cnn),
        "colourization.py": COLOURIZATION,
        "colorization.ipynb": ((2018, 1, 1, 0, 0, 0), nb_text(own_cnn)),
    }))
    text = notes(sub)
    line = next(n for n in sub.notes if n.startswith("colourization:"))
    assert line.startswith("colourization: using colourization.py (exact name); ignored ")
    assert "colorization.ipynb (it is older)" in line
    assert "old/colourization.py (it is in a deeper folder)" in line
    assert "Colourization (1).ipynb (its name is a less exact match)" in line
    assert "a2_colourization.py (its name is a less exact match)" in text
    # a2_colourization.py is also written under its own name for sibling imports; the deeper
    # old/colourization.py is not (its name is taken by the chosen file).
    assert (tmp_path / "ws" / "a2_colourization.py").exists()


def test_same_time_same_depth_prefers_py_then_newest_wins(tmp_path):
    when = (2019, 4, 30, 23, 0, 0)
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "colourization.ipynb": (when, nb_text("class CNN:\n    pass")),
        "colourization.py": (when, "class CNN:\n    pass\n")}))
    assert "using colourization.py" in notes(sub) and ".py is preferred to .ipynb" in notes(sub)
    later = (2019, 4, 30, 23, 30, 0)
    sub = load_submission(write_zip(tmp_path / "t.zip", {
        "colourization.ipynb": (later, nb_text("class CNN:\n    pass")),
        "colourization.py": (when, "class CNN:\n    pass\n")}), tmp_path / "ws2", assignment="a2")
    assert "using colourization.ipynb" in notes(sub)


def test_american_spelling_and_all_roles(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "colorization.py": COLOURIZATION, "color_regression.py": "class RegressionCNN:\n    pass\n",
        "char_rnn.ipynb": nb_text(RNN.replace("print 'loss'", "print('loss')"))}))
    assert set(sub.modules) == {"colourization", "regression", "rnn"}
    assert (tmp_path / "ws" / "colorization.py").exists()       # own name too, for sibling imports


def test_a_single_notebook_is_found_by_what_it_defines(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "A2_final.ipynb": nb_text("class CNN(object):\n    pass", "class RegressionCNN(object):\n    pass",
                                  "train(args)"),
        "plots.py": "import matplotlib\n"}))
    assert set(sub.modules) == {"colourization", "regression"}
    assert sum("skipped top-level code" in n for n in sub.notes) == 1      # one file, noted once
    assert "colourization: using A2_final.ipynb (no file has the expected name; it defines CNN/UNet)" in notes(sub)


def test_locate_prefers_the_file_that_defines_the_key_names(tmp_path):
    a = tmp_path / "a2_colourization_plots.py"
    a.write_text("import matplotlib\n")
    b = tmp_path / "z_colourization.py"
    b.write_text("class UNet:\n    pass\n")
    location = locate([FileEntry(a, a.name), FileEntry(b, b.name)], roles_for("a2"))
    assert location.chosen["colourization"].name == "z_colourization.py"
    assert "a2_colourization_plots.py (it does not define CNN/UNet)" in location.notes[0]


def test_syntax_error_in_one_role_does_not_stop_the_others(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "colourization.py": "import torch\n\n\ndef f(:\n    pass\n", "min-char-rnn.py": RNN,
        "answers.toml": "q1 = [unclosed\n"}))
    assert sub.error is None and set(sub.modules) == {"rnn"}
    assert sub.role_errors["colourization"].startswith("SyntaxError in colourization.py line 4:")
    assert "not valid TOML" in sub.role_errors["answers"] and sub.answers is not None
    assert "colourization: SyntaxError in colourization.py line 4" in notes(sub)


def test_notebook_submission_with_magics_training_and_a_broken_cell(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {"colourization.ipynb": nb_text(
        "!pip install torch\n%matplotlib inline\nimport torch",
        "class CNN(object):\n    pass",
        "print 'training'\ncnn = train(args)",
        "def broken(:\n    pass")}))
    assert sub.error is None
    text = notes(sub)
    assert "cell 2, line 1: `!pip install torch`" in text
    assert "cell 4: Python 2 print statements" in text
    assert "cell 4, line 2 `cnn = train(args)`" in text
    assert "SyntaxError in colourization.ipynb, cell 5, line 1" in text
    module = sub.modules["colourization"].read_text()
    assert "class CNN(object):" in module and "# %% [cell 3]" in module


def test_shadowing_and_unimportable_module_names_are_left_out(tmp_path):
    sub = intake(tmp_path, write_zip(tmp_path / "s.zip", {
        "colourization.py": "x = 1\n", "random.py": "x = 1\n", "torch.py": "x = 1\n", "conftest.py": "",
        "plot-utils.py": "x = 1\n", "sub/helpers.py": "x = 1\n", "helpers.py": "x = 2\n"}))
    names = sorted(p.name for p in (tmp_path / "ws").iterdir())
    assert names == ["colourization.py", "helpers.py"]
    assert (tmp_path / "ws" / "helpers.py").read_text() == "x = 2\n"          # the shallower one
    text = notes(sub)
    assert "a module named `random` would hide" in text
    assert "left out plot-utils.py: `plot-utils` cannot be imported by that name" in text
    assert "left out sub/helpers.py: helpers.py already provides the module `helpers`" in text


def test_a_name_stored_twice_uses_the_later_copy(tmp_path):
    path = tmp_path / "s.zip"
    with pytest.warns(UserWarning):                                  # zipfile warns; archives do this
        write_zip(path, {})
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("colourization.py", "x = 1\n")
            zf.writestr("colourization.py", "x = 2\n")
    sub = intake(tmp_path, path)
    assert sub.modules["colourization"].read_text() == "x = 2\n"
    assert "more than once; the later copy was used: colourization.py" in notes(sub)


# --------------------------------------------------------------------------------------------------
# Student ids
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename,expected", [
    ("CS17BTECH11001_Assign2.zip", "CS17BTECH11001"),
    ("cs17btech11001_assign2.zip", "CS17BTECH11001"),
    ("CS17B1001_Assign2.zip", "CS17B1001"),
    ("CS17B1001-A2.ipynb", "CS17B1001"),
    ("Firstname Lastname_12345_assignsubmission_file_CS17B1001_Assign2.zip", "CS17B1001"),
    ("Firstname Lastname_12345_assignsubmission_file_colourization.ipynb", "Firstname_Lastname_12345"),
    ("CS17B1001_Assign2 - Firstname Lastname.zip", "CS17B1001"),
    ("colourization - Firstname Lastname.ipynb", "Firstname_Lastname"),
    ("lastnamefirstname_12345_67890_CS17B1001_Assign2.zip", "CS17B1001"),
    ("lastnamefirstname_late_12345_67890_CS17B1001_Assign2-1.zip", "CS17B1001"),
    ("lastnamefirstname_12345_67890_assignment.zip", "lastnamefirstname_12345"),
    ("2019CS10001_Assign2.zip", "2019CS10001"),
    ("../../weird name;rm -rf.zip", "weird_name_rm_rf"),
    ("...zip", "unknown"),
])
def test_student_id_from_name(filename, expected):
    assert student_id_from_name(filename) == expected


def test_submissions_differing_only_in_comments_give_byte_identical_workspaces(tmp_path):
    """What lets the probe cache (keyed by the workspace's bytes) answer the second student."""
    mine = "# Student 1, roll CS17B001\n" + COLOURIZATION.replace("super().__init__()",
                                                                  "super().__init__()  # required")
    theirs = "# Student 2 (roll CS17B002): all my own work\n" + COLOURIZATION
    a = load_submission(write_zip(tmp_path / "a.zip", {"a/colourization.py": mine, "a/min_char_rnn.py": RNN}),
                        tmp_path / "wa", assignment="a2")
    b = load_submission(write_zip(tmp_path / "b.zip", {"colourization.py": theirs, "min_char_rnn.py": RNN}),
                        tmp_path / "wb", assignment="a2")
    assert not a.error and not b.error
    files = sorted(p.name for p in a.workspace.iterdir())
    assert files == sorted(p.name for p in b.workspace.iterdir()) and "colourization.py" in files
    for name in files:
        assert (a.workspace / name).read_bytes() == (b.workspace / name).read_bytes(), name


def test_a_file_two_students_share_is_prepared_once_and_their_notes_stay_their_own(tmp_path, monkeypatch):
    """Intake memoises preparation on a file's bytes and name (a class shares the provided code);
    each student still gets their own workspace and notes."""
    import grader.intake.sourceprep as sourceprep

    calls = []
    real = sourceprep.prepare

    def counted(source, name, **kw):
        calls.append(name)
        return real(source, name, **kw)

    monkeypatch.setattr(sourceprep, "prepare", counted)
    unique = f"# memo test {tmp_path}\n"            # bytes no earlier test prepared
    rnn = unique + RNN + "\nprint('training at import')\n"           # skipped, with a note
    a = load_submission(write_zip(tmp_path / "a.zip", {"min_char_rnn.py": rnn}), tmp_path / "wa", assignment="a2")
    b = load_submission(write_zip(tmp_path / "b.zip", {"min_char_rnn.py": rnn, "notes.txt": "b"}), tmp_path / "wb", assignment="a2")
    assert calls == ["min_char_rnn.py"]
    assert (a.workspace / "rnn.py").read_bytes() == (b.workspace / "rnn.py").read_bytes()
    skipped = [n for n in a.notes if "skipped top-level code" in n]
    assert skipped and skipped[0] in b.notes
    a.notes.append("only a's")
    c = load_submission(write_zip(tmp_path / "c.zip", {"min_char_rnn.py": rnn}), tmp_path / "wc", assignment="a2")
    assert "only a's" not in c.notes and calls == ["min_char_rnn.py"]
    # another name, the same bytes: prepared again (messages name the file)
    load_submission(write_zip(tmp_path / "d.zip", {"min-char-rnn.py": rnn}), tmp_path / "wd", assignment="a2")
    assert calls == ["min_char_rnn.py", "min-char-rnn.py"]

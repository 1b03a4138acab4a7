"""grader.intake.locate, grader.intake.roles, grader.intake.fingerprint and the char-RNN probes' name/signature resolution.

Roles are data: the engine finds each role's file by its API over every file of a submission, an
unchanged course starter loses to the student's own code, and the sampler/completion are found by
name and signature (older offerings' names included). Real student files are read at ../shared/
(skipped with a reason when absent), never copied into the project.
"""
from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

from grader.intake import fingerprint
from grader import pack as packmod
from grader.intake.unpack import load_submission
from grader.intake.locate import FileEntry, locate
from grader.intake.roles import Role, Starter, roles_for
from grader.worker.loader import StudentError, load_module
from rubric.a2 import rnnmath, roles as a2roles

PROJECT = Path(__file__).resolve().parent.parent
worker = packmod.load("a2").probe_module()         # A2's worker probes, called here directly
# ../shared relative to the project root; a helper's worktree (/work/wt/NAME) sits one level deeper.
REAL = next((p for p in (PROJECT.parent / "shared" / "real-a2", PROJECT.parent.parent / "shared" / "real-a2")
             if p.exists()), PROJECT.parent / "shared" / "real-a2")
BESIDE = PROJECT / "submissions" / "a2" / "mutants" / "work_beside_starter"
ROLES = roles_for("a2")


def entries(folder: Path) -> list[FileEntry]:
    return [FileEntry(p, p.relative_to(folder).as_posix(), 0.0) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in (".py", ".ipynb", ".toml")]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def rnn_note(location) -> str:
    return next(n for n in location.notes if n.startswith("rnn:"))


# --------------------------------------------------------------------------------------------------
# Roles are data; the engine names no assignment
# --------------------------------------------------------------------------------------------------

def test_the_engine_modules_name_no_assignment():
    for module in ("locate.py", "roles.py", "fingerprint.py"):
        text = (PROJECT / "grader" / "intake" / module).read_text()
        code = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("#"))
        for word in ("colouri", "coloriz", "regression", "lossFun", "CNN", "UNet", "min-char", "a2"):
            assert not re.search(rf"\b{word}", code, re.IGNORECASE), f"grader/intake/{module} names {word!r}"


def test_a2_roles_are_valid_data():
    names = [r.name for r in ROLES]
    assert names == ["colourization", "regression", "rnn", "answers"]
    rnn = next(r for r in ROLES if r.name == "rnn")
    assert rnn.identifies("sample_w_temp") and rnn.identifies("complete_phrase") and rnn.identifies("lossFun")
    assert not rnn.identifies("train") and not rnn.identifies("compute_loss")
    assert all(s.given for r in ROLES for s in r.starters)


def test_another_assignments_roles_are_found_by_their_api(tmp_path):
    roles = (Role(name="net", module="net", classes=("TwoLayerNet",), stems=("twolayernet",),
                  expected="two_layer_net.py"),
             Role(name="solver", module="solver", functions=("sgd_step",), expected="solver.py"))
    write(tmp_path, {"hw/my_model.py": "class TwoLayerNet:\n    def loss(self, X):\n        return X.sum()\n",
                     "hw/opt.py": "def sgd_step(w, dw, lr):\n    return w - lr * dw\n",
                     "hw/plots.py": "import matplotlib\n"})
    location = locate(entries(tmp_path), roles)
    assert location.chosen["net"].name == "hw/my_model.py"
    assert location.chosen["solver"].name == "hw/opt.py"
    assert "net: using hw/my_model.py (no file has the expected name; it defines TwoLayerNet)" in location.notes


# --------------------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------------------

PY2 = '''def sample(h, seed_ix, n):
  """ sample """
  x = np.zeros((vocab_size, 1))
  for t in xrange(n):
    print 'step', t   # chatter
    x[t] = 1
  return x
'''
PY3 = '''def sample(h, seed_ix, n):
    # a comment
    x = np.zeros((vocab_size,1))

    for t in range(n):
        print("step", t)
        x[t] = 1
    return x
'''


def test_python2_and_python3_copies_of_a_function_hash_the_same():
    (a,), (b,) = fingerprint.definitions(PY2), fingerprint.definitions(PY3)
    assert a.digest == b.digest and a.params == ("h", "seed_ix", "n") and not a.placeholder
    (c,) = fingerprint.definitions(PY3.replace("x[t] = 1", "x[t] = 2"))
    assert c.digest != a.digest


@pytest.mark.parametrize("body,placeholder", [
    ("    pass\n", True),
    ('    """Write me."""\n    raise NotImplementedError\n', True),
    ("    super().__init__()\n    padding = k // 2\n    ############### YOUR CODE GOES HERE ###############\n"
     "    ###################################################\n", True),
    ("    # Start Your code\n    # --------------------------\n\n    # End your code\n    return None\n", True),
    ("    # Start Your code\n    # --------------------------\n    x = 1\n    # End your code\n", False),
    ("    ############### YOUR CODE GOES HERE ###############\n    self.conv = nn.Conv2d(1, 2, 3)\n"
     "    ###################################################\n", False),
    ("    return x * 2\n", False),
])
def test_placeholders_are_the_starters_stubs(body, placeholder):
    (d,) = [d for d in fingerprint.definitions("def f(self, k, x):\n" + body) if d.kind == "def"]
    assert d.placeholder is placeholder


def test_methods_are_qualified_and_notebooks_are_read_through_the_notebook_converter(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("from __future__ import print_function\nimport numpy as np"),
                             new_code_cell("class RNN_Model:\n    def sample_rnn(self, seed, n, temperature=1):\n"
                                           "        return [1] * n\n"),
                             new_code_cell("%matplotlib inline\nprint 'hi'")])
    path = tmp_path / "Untitled3.ipynb"
    path.write_text(nbformat.writes(nb))
    names = [d.qualname for d in fingerprint.file_definitions(path)]
    assert names == ["RNN_Model", "RNN_Model.sample_rnn"]
    location = locate(entries(tmp_path), ROLES)
    assert location.chosen["rnn"].name == "Untitled3.ipynb"
    assert "(no file has the expected name; it defines sample_rnn)" in rnn_note(location)


# --------------------------------------------------------------------------------------------------
# Choosing among candidates
# --------------------------------------------------------------------------------------------------

def test_the_work_in_an_oddly_named_file_beats_the_unchanged_starter():
    location = locate(entries(BESIDE), ROLES)
    assert location.chosen["rnn"].name == "a3_part1_2.py"
    note = rnn_note(location)
    assert "chosen for the student's own code in sample_temperature, complete_string" in note
    assert "min-char-rnn.py (the course's min-char-rnn.py starter, unchanged)" in note


def test_intake_writes_the_chosen_file_as_the_role_module(tmp_path):
    sub = load_submission(BESIDE, tmp_path / "ws", assignment="a2")
    assert sub.error is None
    assert "def sample_temperature" in sub.modules["rnn"].read_text()
    assert any("min-char-rnn.py (the course's min-char-rnn.py starter, unchanged)" in n for n in sub.notes)


def test_a_script_that_imports_the_starter_and_redefines_its_functions(tmp_path):
    starter = (BESIDE / "min-char-rnn.py").read_text()
    write(tmp_path, {"min_char_rnn.py": starter,
                     "part1.py": "from min_char_rnn import *\n\n"
                                 "def sample(h, seed_ix, n, alpha):\n    return [seed_ix] * n\n"})
    location = locate(entries(tmp_path), ROLES)
    assert location.chosen["rnn"].name == "part1.py"
    assert "min_char_rnn.py (the course's min-char-rnn.py starter, unchanged)" in rnn_note(location)


def test_a_numbered_copy_with_the_work_beats_the_exact_name_with_stubs(tmp_path):
    stub = ("class CNN(nn.Module):\n    def __init__(self, kernel, num_filters, num_colours):\n"
            "        super(CNN, self).__init__()\n        ############### YOUR CODE GOES HERE ###############\n"
            "        ###################################################\n\n"
            "class UNet(nn.Module):\n    def __init__(self, kernel, num_filters, num_colours):\n"
            "        super(UNet, self).__init__()\n        raise NotImplementedError\n")
    work = stub.replace("        ############### YOUR CODE GOES HERE ###############\n",
                        "        ############### YOUR CODE GOES HERE ###############\n"
                        "        self.downconv1 = nn.Conv2d(1, num_filters, kernel)\n")
    write(tmp_path, {"colourization.py": stub, "colourization (2).py": work})
    location = locate(entries(tmp_path), ROLES)
    assert location.chosen["colourization"].name == "colourization (2).py"
    note = next(n for n in location.notes if n.startswith("colourization:"))
    assert "colourization.py (less of the student's own code in the graded parts: none, against CNN)" in note


def test_several_real_candidates_the_one_with_more_graded_parts_wins(tmp_path):
    write(tmp_path, {
        "rnn_part1.py": "def sample(h, seed_ix, n, alpha):\n    return list(range(n))\n",
        "zz_all.py": "def sample(h, seed_ix, n, alpha):\n    return list(range(n))\n\n"
                     "def complete(start, n):\n    return start[:n]\n",
    })
    location = locate(entries(tmp_path), ROLES)
    assert location.chosen["rnn"].name == "zz_all.py"
    assert ("rnn_part1.py (less of the student's own code in the graded parts: sample, against "
            "sample, complete)") in rnn_note(location)


def test_a_custom_starter_fingerprint_marks_an_unchanged_copy(tmp_path):
    given = "def provided(x):\n    return x + 1\n\ndef helper(y):\n    return y * 2\n"
    digests = frozenset(d.digest for d in fingerprint.definitions(given))
    role = Role(name="part", module="part", functions=("solve",),
                starters=(Starter("the handout's part.py", digests, todo=("solve",)),), expected="part.py")
    write(tmp_path, {"part.py": given + "\ndef solve(z):\n    pass\n",
                     "part_final.py": given + "\ndef solve(z):\n    return provided(z)\n"})
    location = locate(entries(tmp_path), (role,))
    assert location.chosen["part"].name == "part_final.py"
    assert "part.py (the handout's part.py, unchanged)" in location.notes[0]


# --------------------------------------------------------------------------------------------------
# Real submissions (read in place, never copied)
# --------------------------------------------------------------------------------------------------

def real(folder: str) -> Path:
    path = REAL / folder
    if not path.exists():
        pytest.skip(f"real submissions not found at {REAL}")
    return path


@pytest.mark.course_data
@pytest.mark.parametrize("folder,chosen,passed_over", [
    ("rnn-remember00000", ("hw5_code.py", "a3_code.py"),
     ("min-char-rnn.py (the course's min-char-rnn.py starter, unchanged)",
      "clear.py (the course's min-char-rnn.py starter, unchanged)")),
    ("rnn-mphamhung", ("min-char-rnn.py",), ()),
    ("rnn-mandyxu", ("csc321_a4_rnns.py",), ()),
    ("rnn-davifrossard", ("RNN.py",), ("TensorFlow/RNN_Model.py",)),
    ("rnn-silver-bashine", ("min-char-rnn.py",), ()),
])
def test_real_char_rnn_submissions_are_found_by_their_api(folder, chosen, passed_over):
    location = locate(entries(real(folder)), ROLES)
    assert location.chosen["rnn"].name in chosen
    note = rnn_note(location)
    for text in passed_over:
        assert text in note


@pytest.mark.course_data
def test_the_starter_fingerprints_are_found_in_the_real_submissions():
    """Each function the course provides appears, as fingerprinted, in at least two real files."""
    real("rnn-remember00000")
    files = [p for p in REAL.rglob("*") if p.suffix in (".py", ".ipynb")]
    seen: dict[str, int] = {}
    for path in files:
        for digest in {d.digest for d in fingerprint.file_definitions(path)}:
            seen[digest] = seen.get(digest, 0) + 1
    for role in ROLES:
        for starter in role.starters:
            missing = [d for d in starter.given if seen.get(d, 0) < 2]
            assert not missing, f"{starter.name}: {missing} not found in two real files"


@pytest.mark.course_data
def test_real_colourization_submissions_keep_their_files():
    for folder in ("c18-abbie0214", "c18-dxyk", "c19nb-yimizh"):
        location = locate(entries(real(folder)), ROLES)
        assert location.chosen["colourization"].name.startswith(("colorization.py", "colourization.py",
                                                                 "colourization"))
        assert location.chosen["colourization"].suffix in (".py", ".ipynb")
        assert "rnn" not in location.chosen


# --------------------------------------------------------------------------------------------------
# The char-RNN probes: names and signatures (run in-process on real student-shaped modules)
# --------------------------------------------------------------------------------------------------

V, H = 7, 5


def snapshot():
    rng = np.random.RandomState(0)
    return {"Wxh": rng.randn(H, V), "Whh": rng.randn(H, H) * 0.5, "Why": rng.randn(V, H) * 2,
            "bh": rng.randn(H, 1) * 0.1, "by": rng.randn(V, 1) * 0.1, "h": rng.randn(H, 1) * 0.3}


CHARS = list("abc d:\n")


class Ctx:
    def __init__(self, path: Path):
        self.path = path
        self.mod = None

    def module(self, role):
        if self.mod is None:
            self.mod = load_module(role, self.path)
        return self.mod


def probe(tmp_path, source: str, kind: str, **over):
    path = tmp_path / f"student_{abs(hash(source)) % 10**8}.py"
    path.write_text(source)
    args = dict(chars=CHARS, seed_ix=2, n=4, alpha=2.0, reps=5, seed=0,
                names=["sample", "sample_temp", "complete", "comp"],
                patterns=list(a2roles.SAMPLER_NAMES if kind == "rnn_sample" else a2roles.COMPLETION_NAMES),
                sampler_patterns=list(a2roles.SAMPLER_NAMES), starter="abc")
    args.update(over)
    return worker.PROBES[kind](Ctx(path), args, snapshot())


SAMPLER = '''import numpy as np
def sample(h, seed_ix, n):
    return [0] * n
def {name}(h, seed_ix, n, {temp}):
    x = np.zeros((vocab_size, 1)); x[seed_ix] = 1; out = []
    for t in range(n):
        h = np.tanh(Wxh @ x + Whh @ h + bh)
        y = Why @ h + by
        p = np.exp({logits}) / np.sum(np.exp({logits}))
        ix = np.random.choice(range(vocab_size), p=p.ravel())
        x = np.zeros((vocab_size, 1)); x[ix] = 1; out.append(ix)
    return out
'''


@pytest.mark.parametrize("name,temp,logits,convention,value", [
    ("sample_w_temp", "alpha", "alpha * y", "multiplies", 2.0),
    ("sample_temperature", "temperature", "y / temperature", "divides", 0.5),
    ("temperature_sample", "T", "y / T", "divides", 0.5),
    ("sample_hot", "tau=1.0", "y / tau", "divides", 0.5),
    ("my_sample", "beta", "beta * y", "multiplies", 2.0),
])
def test_renamed_samplers_and_temperatures_are_resolved(tmp_path, name, temp, logits, convention, value):
    arrays, facts = probe(tmp_path, SAMPLER.format(name=name, temp=temp, logits=logits), "rnn_sample")
    assert facts["function"] == name and facts["convention"] == convention
    assert facts["value"] == pytest.approx(value)
    assert arrays["draws"].shape == (5, 4)


def test_a_sampler_method_of_a_class_with_its_state_on_the_object(tmp_path):
    source = '''import numpy as np
class RNN_Model:
    def __init__(self, hidden_size, chars, temperature=1, max_updates=5000):
        self.hprev = np.zeros((hidden_size, 1))
        self.char_to_ix = {ch: i for i, ch in enumerate(chars)}
    def one_hot(self, v):
        x = np.zeros((self.vocab_size, 1)); x[v] = 1; return x
    def sample_rnn(self, seed, sample_length, temperature=1):
        x = self.one_hot(self.char_to_ix[seed]); out = ''
        for t in range(sample_length):
            self.hprev = np.tanh(self.Wxh @ x + self.Whh @ self.hprev + self.bh)
            y = self.Why @ self.hprev + self.by
            p = np.exp(y / temperature) / np.sum(np.exp(y / temperature))
            ix = np.random.choice(range(self.vocab_size), p=p.ravel())
            out += self.ix_to_char[ix]; x = self.one_hot(ix)
        return out
'''
    arrays, facts = probe(tmp_path, source, "rnn_sample")
    assert facts["function"] == "RNN_Model.sample_rnn" and facts["convention"] == "divides"
    assert arrays["draws"].shape == (5, 4)


def test_no_temperature_and_no_sampler_say_what_was_found(tmp_path):
    with pytest.raises(StudentError, match=r"sample\(h, seed_ix, n\) takes no temperature.*samplers found"):
        probe(tmp_path, "def lossFun(inputs, targets, hprev):\n    return 0\n"
                        "def sample(h, seed_ix, n):\n    return [0] * n\n", "rnn_sample")
    with pytest.raises(StudentError, match=r"no sampling function found.*functions found: "
                                           r"lossFun\(inputs, targets, hprev\), helper\(x\)"):
        probe(tmp_path, "def lossFun(inputs, targets, hprev):\n    return 0\ndef helper(x):\n    return x\n",
              "rnn_sample")


def test_completions_from_a_string_with_a_tuple_and_the_starter_in_front(tmp_path):
    source = '''import numpy as np
def part2(inputs_string, temp=1.0, n=200):
    ixes = [char_to_ix[c] for c in inputs_string]
    ixes += [1] * n
    return ''.join(ix_to_char[i] for i in ixes), ixes
'''
    arrays, facts = probe(tmp_path, source, "rnn_complete", names=["complete"])
    assert facts["function"] == "part2" and facts["form"] == "string"
    assert arrays["lengths"].tolist() == [4] * 5 and (arrays["draws"] == 1).all()


def test_completion_from_a_primed_hidden_state_and_with_a_maximum_length(tmp_path):
    primed = "def complete(h, seed_ix, n):\n    return [seed_ix] * n\n"
    arrays, facts = probe(tmp_path, primed, "rnn_complete")
    assert facts["form"] == "primed hidden state"
    assert (arrays["draws"] == CHARS.index("c")).all()                  # seeded with the last character
    capped = "def generate_text(start, max_len=100):\n    return start + 'd' * max_len\n"
    arrays, facts = probe(tmp_path, capped, "rnn_complete")
    assert facts["function"] == "generate_text" and arrays["lengths"].tolist() == [4] * 5


def test_a_minimum_length_parameter_promises_at_least_n_characters(tmp_path):
    # rnn-davifrossard's complete_phrase(phrase, temperature, minlenght) stops at a sentence end
    # after at least `minlenght` characters: more than n is what it promises.
    source = "def complete_phrase(phrase, temperature, minlenght):\n    return phrase + 'd' * (minlenght + 3)\n"
    arrays, facts = probe(tmp_path, source, "rnn_complete")
    assert facts["length"] == "at least" and arrays["lengths"].tolist() == [7] * 5
    exact = "def complete(start, n):\n    return start + 'd' * n\n"
    assert probe(tmp_path, exact, "rnn_complete")[1]["length"] == "exactly"

def test_a_completion_that_takes_no_string_says_so(tmp_path):
    with pytest.raises(StudentError, match=r"comp\(m, n\) takes neither a starter string nor a hidden state"):
        probe(tmp_path, "def comp(m, n):\n    print('context')\n", "rnn_complete")


# --------------------------------------------------------------------------------------------------
# Every step counts: exact conditional distributions along each drawn path
# --------------------------------------------------------------------------------------------------

def simulate(w, h0, seed_ix, reps, steps, beta, seed, feed=True):
    rng = np.random.RandomState(seed)
    draws = np.zeros((reps, steps), dtype=np.int64)
    for r in range(reps):
        h, x = h0.copy(), seed_ix
        for t in range(steps):
            h = np.tanh(w["Wxh"][:, [x]] + w["Whh"] @ h + w["bh"])
            z = beta * (w["Why"] @ h + w["by"]).ravel()
            p = np.exp(z - z.max())
            p /= p.sum()
            draws[r, t] = rng.choice(len(p), p=p)
            if feed:
                x = draws[r, t]
    return draws


def test_a_generator_that_feeds_back_passes_and_one_that_does_not_fails():
    w = snapshot()
    h0 = w.pop("h")
    for seed in range(10):                      # a right sampler passes under every seed tried
        draws = simulate(w, h0, 2, 800, 5, 2.0, seed)
        ok, p, _ = rnnmath.sequential_fit(draws, rnnmath.path_probs(w, h0, 2, draws, 2.0), 1e-3)
        assert ok, (seed, p)
    stuck = simulate(w, h0, 2, 800, 5, 2.0, 0, feed=False)
    ok, p, detail = rnnmath.sequential_fit(stuck, rnnmath.path_probs(w, h0, 2, stuck, 2.0), 1e-3)
    assert not ok and "after the first" in detail
    assert rnnmath.sequential_fit(stuck, rnnmath.path_probs(w, h0, 2, stuck, 2.0, feed_input=False), 1e-3)[0]
    first = rnnmath.path_probs(w, h0, 2, stuck, 2.0)[:, 0, :]
    assert np.allclose(first, rnnmath.probs(w, h0, 2, 2.0)[None, :])   # step 0 is the old check's

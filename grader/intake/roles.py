"""What a role of a submission is, as data: the engine knows no assignment's roles.

A role is a part of the work a submission must (or may) provide: a file the worker imports under a
fixed module name (`code` roles) or a data file read on the trusted side (e.g. an answers file).
Each assignment describes its roles in its own pack (`rubric/<assignment>/roles.py`, a module-level
`ROLES` tuple) and the caller passes them to `grader.intake.locate`.

A code role is identified by its API (the classes and functions a file must define), not by its
file name: the name hints only break ties and word the messages. `starters` are the fingerprints of
the course's untouched starter files (every handout version), so an unchanged starter never wins
over a file that holds the student's own code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

CODE = "code"
DATA = "data"
SCRIPT = "script"     # a script run to completion by a script probe: kept whole, not made import-safe


@dataclass(frozen=True)
class Starter:
    """The fingerprint of one course-provided starter file of a role (one handout version).

    `given` are hashes of the starter's own functions and methods (normalised source, see
    `grader.intake.fingerprint`), so a file made from the starter is recognised whatever its name; `todo`
    are the qualified names of the functions the student has to write (placeholders in the starter):
    a copy of the starter in which every `todo` function is absent, still a placeholder or identical
    to the starter is the starter unchanged.
    """

    name: str                                   # e.g. "2018 starter of the model file"
    given: frozenset[str] = frozenset()         # hashes of the starter's functions (normalised source)
    todo: tuple[str, ...] = ()                  # qualified names the student writes ("Model.__init__")


@dataclass(frozen=True)
class Role:
    name: str                                   # the role's name in notes and records ("model")
    module: str                                 # module name the worker imports it as ("model")
    kind: str = CODE                            # CODE (a .py/.ipynb module) or DATA (a file read as is)
    classes: tuple[str, ...] = ()               # a file that defines one of these ...
    functions: tuple[str, ...] = ()             # ... or one of these plays the role
    aliases: tuple[str, ...] = ()               # ... or a def whose name matches one of these regexes
    # The graded parts, each a tuple of name regexes (full match on a class, def or method name):
    # how much of its own code a candidate holds is the number of parts it implements (the static
    # proxy for "the candidate that earns most"). Default: one part per class and function.
    parts: tuple[tuple[str, ...], ...] = ()
    signatures: dict = field(default_factory=dict)  # optional: API name -> parameter names, for messages
    stems: tuple[str, ...] = ()                 # preferred file stems, normalised (letters/digits only)
    keywords: tuple[str, ...] = ()              # regexes on the normalised stem: a name hint
    keyword_rank: int = 0                       # which role's keywords are tried first (lower first)
    suffixes: tuple[str, ...] = (".py", ".ipynb")
    required: bool = False
    expected: str = ""                          # what is looked for, in words, for messages
    starters: tuple[Starter, ...] = ()

    @property
    def api(self) -> tuple[str, ...]:
        return self.classes + self.functions

    @property
    def api_label(self) -> str:
        return "/".join(self.api)

    @property
    def graded_parts(self) -> tuple[tuple[str, ...], ...]:
        return self.parts or tuple((re.escape(n),) for n in self.api)

    def identifies(self, name: str) -> bool:
        """Whether a class/def/method called `name` marks a file as a candidate for this role."""
        return name in self.api or any(re.fullmatch(a, name) for a in self.aliases)

    @property
    def api_pattern(self) -> re.Pattern | None:
        """A quick textual test for the API (before parsing): `class Model`, `def loss`."""
        parts = []
        if self.classes:
            parts.append(r"\bclass\s+(?:" + "|".join(map(re.escape, self.classes)) + r")\b")
        names = [re.escape(f) for f in self.functions] + list(self.aliases)
        if names:
            parts.append(r"\bdef\s+(?:" + "|".join(names) + r")\b")
        return re.compile("|".join(parts)) if parts else None


def roles_for(assignment: str) -> tuple[Role, ...]:
    """The roles of an assignment's pack (its roles module's `ROLES`, validated by grader.pack)."""
    from .. import pack

    return pack.load(assignment).roles

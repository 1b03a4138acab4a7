"""Reports: what the grading produces for people and other systems (trusted side).

`results` writes result.json, Gradescope's results.json and the console table; `gradebook` the
class's grades.csv and manual sheet; `feedback` (with `images`) each student's feedback.md and
picture; `export` the Gradescope autograder; `bundle` the student bundle (visible checks and the
gold the pack lets students see).
"""

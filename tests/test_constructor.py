"""Models are built as the student's signature asks (rubric/a2/probes.py, constructor_call): the 2019
course signature CNN(kernel, num_filters, num_colours, num_in_channels) has no default, the 2018 one
takes no num_in_channels, and students rename or reorder the arguments."""
from __future__ import annotations

import pytest

from grader.pack import load as load_pack
from grader.worker.loader import StudentError

constructor_call = load_pack("a2").probe_module().constructor_call

VALUES = {"kernel": 3, "nf": 16, "nc": 24, "cin": 1}


def built(cls, **values):
    args, kwargs, shown = constructor_call(cls, dict(VALUES, **values), cls.__name__)
    return cls(*args, **kwargs), shown


class Course2019:
    def __init__(self, kernel, num_filters, num_colours, num_in_channels):   # no default
        self.got = (kernel, num_filters, num_colours, num_in_channels)


class Course2018:
    def __init__(self, kernel, num_filters, num_colors):
        self.got = (kernel, num_filters, num_colors)


class Reordered:
    def __init__(self, num_colours, num_in_channels=1, kernel_size=3, num_filters=32):
        self.got = (kernel_size, num_filters, num_colours, num_in_channels)


class Unnamed:
    def __init__(self, a, b, c, d):
        self.got = (a, b, c, d)


class Inherited(Course2019):
    pass


def test_the_2019_signature_gets_num_in_channels_even_when_it_is_1():
    model, shown = built(Course2019)
    assert model.got == (3, 16, 24, 1)
    assert shown == "Course2019(kernel=3, num_filters=16, num_colours=24, num_in_channels=1)"
    assert built(Inherited, cin=3)[0].got == (3, 16, 24, 3)


def test_the_2018_signature_gets_three_arguments_and_cannot_take_three_channels():
    assert built(Course2018)[0].got == (3, 16, 24)
    with pytest.raises(StudentError, match="takes no num_in_channels"):
        built(Course2018, cin=3)


def test_arguments_are_matched_by_name_or_given_in_the_handouts_order():
    assert built(Reordered, cin=3)[0].got == (3, 16, 24, 3)
    assert built(Unnamed)[0].got == (3, 16, 24, 1)


def test_a_required_argument_the_handout_does_not_have_is_the_students_error():
    class Extra:
        def __init__(self, kernel, num_filters, num_colours, dropout):
            pass
    with pytest.raises(StudentError, match="requires dropout"):
        built(Extra)

"""HW5 (CMU 16-720 "Neural Networks for Recognition"): rubric, trusted-side judging."""

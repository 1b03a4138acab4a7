"""The worker runtime: the only grader code that runs next to student code, inside the sandbox.

It imports nothing from the rest of `grader` (the sandbox copies this package alone), answers probe
requests with plain arrays, and decides nothing about scores.
"""

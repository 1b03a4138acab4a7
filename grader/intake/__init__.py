"""Intake: a student's hand-in made into a workspace the worker can import (trusted side).

`unpack` takes a zip, folder, script or notebook in with one zip-safety policy (`zipsafe`), finds
the work by its API (`locate`, `roles`, `fingerprint`: the course's untouched starters set aside),
turns notebooks into modules cell by cell (`notebook`), makes every module import-safe
(`sourceprep`) and scans for code that reaches into the worker (`tamper`).
"""

"""Probes: asking the worker questions and keeping its answers (trusted side).

`client` runs a probe plan against a worker and parses its answers as hostile data; `cache` keeps
answers known for an exact workspace; `store` writes and reads them (npz, no pickle); `scripts`
builds script-probe requests; `reuse` lets the reference's trained result stand for a model shown
to be the same.
"""

"""The sandbox: where student code runs, isolated (trusted side of it).

`launcher` starts a worker (bubblewrap, its own uid from the pool in `slots`, the `seccomp`
filter, rlimits, a scrubbed environment) around a private copy of the worker runtime
(grader/worker); `engine` keeps a warm zygote to fork workers from, and a warm pytest for checks.
"""

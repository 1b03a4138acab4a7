"""Checks: the pack's pytest checks run against gold, and their outcomes scored (trusted side).

`runner` runs a pack's checks (cold, or in the warm `server`), `compare` holds the registered
comparators, `kit` the helpers every pack's checks import (`Run`, `expect`, `require`,
`trust_facts`, statistical tests), and `scoring` turns check outcomes into item scores.
"""

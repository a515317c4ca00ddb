"""Chaos runs: many trips against hostile services while workers are SIGKILLed and the store
is disrupted (connections terminated, the server restarted, the write lock held), then every
invariant is checked against the services' ledgers and the facts. See docs/RELIABILITY.md.
"""

"""The pure core: fact kinds, the workflow view, decisions and the supervisors' rules.

Nothing here performs I/O or reads a clock: every function takes the facts it needs and
`now`, and returns values. That is what lets the engine replay a decision and the tests
check the rules from tables of facts. A layer test keeps it so.
"""

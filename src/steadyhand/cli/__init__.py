"""The `steadyhand` command line: the click group and shared options (`group`), the
commands that run things (`run`), operator commands (`ops`), and text rendering."""

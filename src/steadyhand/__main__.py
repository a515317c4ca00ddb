"""`python -m steadyhand`: the command line, for when the console script is not on PATH.

The demo starts its workers this way, so they run the same interpreter and copy of steadyhand.
"""

from steadyhand.cli.main import main

if __name__ == "__main__":
    main(prog_name="steadyhand")

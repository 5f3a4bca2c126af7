"""``python -m errorkit``: the ``errorkit`` command, for where its script is not on PATH."""

from errorkit.cli import main

if __name__ == "__main__":
    main()

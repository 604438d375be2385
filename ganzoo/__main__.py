"""``python -m ganzoo``: the command line, as the ``ganzoo`` script runs it."""

from ganzoo.cli import main

main()

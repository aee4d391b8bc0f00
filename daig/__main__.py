"""``python -m daig`` is the ``daig`` command."""

from daig.cli import main

main()

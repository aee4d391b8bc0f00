"""``python -m daig.cli`` is the ``daig`` command."""

from daig.cli import main

main()

"""``python -m daig_cli`` is the ``daig`` command."""

from daig_cli import main

main()

"""``python -m client.cli``: the same as ``cadena``."""

from client.cli.main import main

main()

"""The ``cadena`` command line, one module per group of commands.

- :mod:`client.cli.main`: the root command, ``profile``, ``keys``, ``login``; ``main()``;
- :mod:`client.cli.common`: connecting a profile, output, errors and exit codes;
- :mod:`client.cli.admin`: states, liaisons, clearances, channels (coordinators);
- :mod:`client.cli.packets`, :mod:`client.cli.sharing`, :mod:`client.cli.follow`:
  sending, fetching, sharing and following packets (prosecutors);
- :mod:`client.cli.audit`, :mod:`client.cli.certificate`: audits and custody
  certificates;
- :mod:`client.cli.contacts`, :mod:`client.cli.trust`: contacts' keys, trust roots;
- :mod:`client.cli.agent`: ``cadena agent`` (the local agent, :mod:`client.agent`);
- :mod:`client.cli.demo` (and its story): ``cadena demo``.

The commands only parse options and print: the work is in the SDK
(:mod:`client.sdk` and the modules it uses), which the desk uses too.
"""

from client.cli.main import app, main

__all__ = ["app", "main"]

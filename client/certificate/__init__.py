"""Custody certificates on the court's side: offline verification, the PDF, refresh.

- :mod:`client.certificate.verify`: :func:`check_certificate` (a report) and
  :func:`verify_certificate` (fail closed), with :class:`Trust`;
- :mod:`client.certificate.messages`: what the verifier says, as message ids with
  parameters (English for the CLI, translated by the desk's court page);
- :mod:`client.certificate.pdf`: the printable certificate with the bundle attached;
- :mod:`client.certificate.refresh`: extend a certificate to a newer checkpoint;
- :mod:`client.cli.certificate`: ``cadena certificate ...``.

The bundle format itself is :mod:`custody` (shared with the server).
"""

"""Cadena Desk: the graphical interface, a small web application on the liaison's own machine.

``cadena desk`` serves it on 127.0.0.1 and opens the browser on it; keys,
encryption, signatures and verification stay in this process (the client
SDK), and the browser is only the screen. docs/desk.md describes it;
:mod:`client.desk.app` builds it, :mod:`client.desk.security` guards its
port, :mod:`client.desk.i18n` speaks its four languages,
:mod:`client.desk.pages` is what every page uses, and each role's pages are a
section in :mod:`client.desk.sections`.
"""

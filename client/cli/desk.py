"""``cadena desk``: the graphical interface, served on this machine and opened in the browser.

See :mod:`client.desk` and docs/desk.md. The command prints a single-use
launch link (valid for a minute); pressing Enter in the terminal prints a new
one, Ctrl-C stops the desk (the keys leave memory with the process).
"""

from __future__ import annotations

import sys
import webbrowser
from typing import Annotated

import typer

from client.cli.common import ProfileOpt, deps, err, guarded, open_profile
from client.local_server import free_port

KDF_CHOICES = ("sensitive", "moderate", "interactive")


@guarded
def desk(
    ctx: typer.Context, profile: ProfileOpt = None,
    port: Annotated[int | None, typer.Option(
        help="Port on 127.0.0.1 (default: a free one).", min=1, max=65535)] = None,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Print the link only; do not open the browser.")] = False,
    *, lock_after: Annotated[float, typer.Option(
        "--lock-after", help="Minutes without use after which the desk locks.", min=0.5)] = 15,
    kdf: Annotated[str, typer.Option(
        help="Argon2id cost of a key file made on first run (sensitive, moderate, "
             "interactive).")] = "sensitive",
) -> None:
    """Open Cadena Desk: the graphical interface, on this machine only (127.0.0.1)."""
    from client.desk.app import DeskOptions  # Starlette and Jinja2 load only for the desk
    from client.desk.server import running_desk

    if kdf not in KDF_CHOICES:
        raise typer.BadParameter(f"choose one of {', '.join(KDF_CHOICES)}", param_hint="--kdf")
    options = DeskOptions(open_profile(ctx, profile), port or free_port(),
                          idle=lock_after * 60, kdf=kdf)
    with running_desk(options) as running:
        link = running.desk.launch_url()
        err().print(f"Cadena Desk for profile [bold]{options.profile.name}[/] at {running.url}")
        err().print(f"Open (once, within a minute): {link}", soft_wrap=True)
        err().print("Press Enter for a new link; Ctrl-C to stop.")
        if not no_browser and deps(ctx).http is None:
            webbrowser.open(link)
        try:
            for _line in sys.stdin:
                err().print(f"Open (once, within a minute): {running.desk.launch_url()}",
                            soft_wrap=True)
            running.thread.join()
        except KeyboardInterrupt:
            pass

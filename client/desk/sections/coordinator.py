"""The coordinator's pages (to be built: see docs/desk.md, "Adding a page").

Registered now so the navigation, the role filter and the tests already
cover the section; its pages replace the placeholder below.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from client.desk.i18n import N_
from client.desk.pages import COORDINATOR, Section, blocking, render, unlocked_client


async def index(request: Request) -> Response:
    """The section's first page (a placeholder until its pages are built)."""
    await blocking(unlocked_client, request)  # locked: to the unlock page first
    return render(request, "coordinator/index.html")


section = Section(key="coordinator", title=N_("Coordination"), roles=frozenset({COORDINATOR}),
                  routes=[Route("/", index, methods=["GET"])])

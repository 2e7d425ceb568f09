"""The desk's form tokens (client/desk/once.py): taken once, bound, bounded, and on every form
that needs one.

Every POST route of the desk is either wrapped by ``acts_once`` or listed in
:data:`NATURALLY_IDEMPOTENT` with the reason a second sending does no harm: a
route added later fails :func:`test_every_post_route_acts_once_or_says_why_not` until
it chooses. ADR 0036.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from starlette.routing import BaseRoute, Mount, Route

from client.desk.app import TEMPLATES, routes
from client.desk.once import PER_SESSION, SWEEP_EVERY, FormTokens, Taking

NATURALLY_IDEMPOTENT = {
    "/unlock": "opens the same keys again",
    "/lock": "locks a locked desk",
    "/language": "sets the same language",
    "/setup/server": "writes the same server and liaison into the profile",
    "/setup/trust": "writes the same trust roots (each sending is confirmed first)",
    "/prosecutor/attachments": "not a form: the page's script sends each file once; a file "
                               "is sent only by the compose form that lists it, once",
    "/prosecutor/attachments/{file}/remove": "removes a removed file (nothing)",
    "/prosecutor/certificates/{cid}/collect": "asks again for a sealed certificate: a read",
    "/prosecutor/folder": "writes the same folder",
    "/coordinator/states/{code}/status": "sets the same status (the server refuses no change)",
    "/coordinator/liaisons/enrol": "reads a key file and shows it: nothing is sent",
    "/coordinator/clearances/{id}/renew": "sets the same end date (to the second)",
    "/coordinator/clearances/{id}/revoke": "a revoked clearance stays revoked (refused again)",
    "/coordinator/channels/{id}/members": "a member is a member once (refused again)",
    "/coordinator/channels/{id}/members/{liaison}/remove": "takes out someone already out",
    "/coordinator/witnesses/{name}/remove": "removes a removed witness (refused again)",
    "/auditor/verify": "one run at a time per desk; another later reads the ledger again",
    "/auditor/export": "writes the same verified ledger into the same file again",
    "/court/": "checks a certificate: nothing is stored or sent",
}


def _post_routes(found: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    for route in found:
        if isinstance(route, Mount):
            yield from _post_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route) and "POST" in (route.methods or ()):
            yield prefix + route.path, route


def _acts_once(route: Route) -> bool:
    return hasattr(route.endpoint, "__wrapped__")


def test_every_post_route_acts_once_or_says_why_not() -> None:
    found = dict(_post_routes(routes()))
    undecided = [p for p, r in found.items()
                 if not _acts_once(r) and p not in NATURALLY_IDEMPOTENT]
    assert not undecided, f"acts_once, or why a second sending does no harm: {undecided}"
    stale = [p for p in NATURALLY_IDEMPOTENT if p not in found or _acts_once(found[p])]
    assert not stale, stale


_FORM = re.compile(r'<form method="post" action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>',
                   re.DOTALL)


def _shape(path: str) -> str:
    return re.sub(r"\{\{.*?\}\}|\{[a-z_]+\}", "*", path)


def test_every_form_of_a_route_that_acts_once_carries_its_token() -> None:
    """A form that lacked it would be refused each time (out of date): caught here first."""
    once = {_shape(p) for p, r in _post_routes(routes()) if _acts_once(r)}
    forms = [(t, m) for t in TEMPLATES.rglob("*.html")
             for m in _FORM.finditer(t.read_text(encoding="utf-8"))]
    checked = 0
    for template, form in forms:
        if _shape(form.group("action")) in once:
            checked += 1
            action = form.group("action").replace("{{ ", '" ~ ').replace(" }}", ' ~ "')
            assert f'once("{action}")'.replace(' ~ ""', "") in form.group("body"), (
                Path(template).name, form.group("action"))
    assert checked == len(once)


def test_a_token_is_taken_once() -> None:
    tokens = FormTokens()
    token = tokens.issue("s", "/prosecutor/compose")
    assert len(token) >= 32  # 192 random bits, URL-safe base64
    assert token != tokens.issue("s", "/prosecutor/compose")
    taking, form = tokens.take("s", "/prosecutor/compose", token)
    assert taking is Taking.FRESH
    assert form is not None
    assert tokens.take("s", "/prosecutor/compose", token)[0] is Taking.TAKEN
    tokens.finish(form, "/prosecutor/packets/p")
    again, same = tokens.take("s", "/prosecutor/compose", token)
    assert again is Taking.TAKEN
    assert same is form
    assert form.led_to == "/prosecutor/packets/p"


def test_a_token_given_back_can_be_taken_again() -> None:
    """Its first sending acted on nothing (the form had errors)."""
    tokens = FormTokens()
    token = tokens.issue("s", "/p")
    _taking, form = tokens.take("s", "/p", token)
    assert form is not None
    tokens.give_back(form)
    assert tokens.take("s", "/p", token)[0] is Taking.FRESH


@pytest.mark.parametrize(("session", "purpose", "token"), [
    ("other", "/p", None), ("s", "/q", None), ("s", "/p", ""), ("s", "/p", "guessed")])
def test_a_token_of_another_session_or_form_or_none_is_refused(
        session: str, purpose: str, token: str | None) -> None:
    tokens = FormTokens()
    issued = tokens.issue("s", "/p")
    assert tokens.take(session, purpose, issued if token is None else token) == (
        Taking.REFUSED, None)
    assert tokens.take("s", "/p", issued)[0] is Taking.FRESH  # still there for its own form


def test_an_expired_token_is_refused_and_dropped() -> None:
    now = [0.0]
    tokens = FormTokens(ttl=60, monotonic=lambda: now[0])
    token = tokens.issue("s", "/p")
    now[0] = 60.0
    assert tokens.take("s", "/p", token) == (Taking.REFUSED, None)
    assert tokens.held("s") == 0


def test_a_page_reloaded_in_a_loop_keeps_a_bounded_number_of_tokens() -> None:
    tokens = FormTokens()
    issued = [tokens.issue("s", "/p") for _ in range(PER_SESSION * 20)]
    assert tokens.held("s") == PER_SESSION
    assert tokens.take("s", "/p", issued[0])[0] is Taking.REFUSED  # the oldest went first
    assert tokens.take("s", "/p", issued[-1])[0] is Taking.FRESH


def test_sessions_whose_tokens_all_expired_are_forgotten() -> None:
    """A desk runs for weeks: every browser session that ever opened a form must not stay
    in its memory once its tokens have expired (a token still in force is kept)."""
    now = [0.0]
    tokens = FormTokens(ttl=10.0, monotonic=lambda: now[0])
    for n in range(300):
        tokens.issue(f"old-{n}", "/compose")
    kept = tokens.issue("recent", "/compose")
    now[0] = 10.5
    fresh = tokens.issue("recent", "/compose")
    for _ in range(SWEEP_EVERY):
        tokens.issue("another", "/compose")
    assert tokens.sessions() == 2  # "recent" (one token in force) and "another"
    assert tokens.held("old-0") == 0
    assert tokens.take("recent", "/compose", kept)[0] is Taking.REFUSED
    assert tokens.take("recent", "/compose", fresh)[0] is Taking.FRESH


def test_threads_taking_one_token_at_once_find_it_fresh_once() -> None:
    tokens = FormTokens()
    for _round in range(50):
        token = tokens.issue("s", "/p")
        start = threading.Barrier(8)
        found: list[Taking] = []

        def take(token: str = token, start: threading.Barrier = start,
                 found: list[Taking] = found) -> None:
            start.wait()
            found.append(tokens.take("s", "/p", token)[0])
        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(t.value for t in found) == ["fresh"] + ["taken"] * 7

"""The desk's port is guarded: launch token, cookie, Host, CSRF, Origin, headers, loopback.

These talk to a real desk (uvicorn on 127.0.0.1, in a thread) with httpx, as
any other program on the machine could; the browser-level ones (a page of
another origin, the CSP) are in test_security_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.cli import app as cli_app
from client.desk.security import COOKIE, LAUNCH_TTL, Sessions
from client.desk.server import RunningDesk
from client.profile import Profile
from tests.desk.harness import open_desk


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDesk]:
    """A desk for a profile that does not exist yet (first run)."""
    with open_desk(Profile("fresh", tmp_path_factory.mktemp("home"))) as running:
        yield running


@pytest.fixture
def client(desk: RunningDesk) -> Iterator[httpx.Client]:
    """An HTTP client that opened the desk through a launch link (it holds the cookie)."""
    with httpx.Client(base_url=desk.url, follow_redirects=False) as launched:
        answer = launched.get(desk.desk.launch_url().removeprefix(desk.url))
        assert answer.status_code == 303, answer.text
        yield launched


def _csrf(client: httpx.Client) -> str:
    page = client.get("/court/")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_the_launch_token_is_single_use_and_turns_into_a_strict_httponly_cookie(
        desk: RunningDesk) -> None:
    link = desk.desk.launch_url().removeprefix(desk.url)
    with httpx.Client(base_url=desk.url) as client:
        first = client.get(link)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert client.get("/court/").status_code == 200
    with httpx.Client(base_url=desk.url) as other:
        again = other.get(link)
        assert again.status_code == 403
        assert COOKIE not in again.headers.get("set-cookie", "")
        assert other.get("/court/").status_code == 403


def test_a_launch_token_expires_within_a_minute() -> None:
    now = [1000.0]
    sessions = Sessions(monotonic=lambda: now[0])
    token = sessions.launch_token()
    now[0] += LAUNCH_TTL + 0.001
    assert sessions.redeem(token) is None
    assert LAUNCH_TTL <= 60
    fresh = sessions.launch_token()
    now[0] += LAUNCH_TTL - 1
    assert sessions.redeem(fresh) is not None


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
               max_size=60))
def test_a_guessed_launch_token_or_cookie_opens_nothing(guess: str) -> None:
    sessions = Sessions()
    sessions.launch_token()
    assert sessions.redeem(guess) is None
    assert sessions.get(guess) is None


@pytest.mark.parametrize("path", ["/", "/court/", "/unlock", "/setup/keys",
                                  "/prosecutor/", "/setup/public-keys.json"])
def test_without_the_cookie_every_page_is_refused(desk: RunningDesk, path: str) -> None:
    with httpx.Client(base_url=desk.url, cookies={COOKIE: "not-a-session"}) as client:
        answer = client.get(path)
    assert answer.status_code == 403
    assert "cadena desk" in answer.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1",
                                  "127.0.0.1:1", "localhost.evil.example:{port}",
                                  "[::1]:{port}", "0.0.0.0:{port}"])
def test_another_host_name_is_refused_even_with_the_cookie(desk: RunningDesk, client: httpx.Client,
                                                            host: str) -> None:
    answer = client.get("/court/", headers={"Host": host.format(port=desk.desk.options.port)})
    assert answer.status_code == 421
    assert "Check a custody certificate" not in answer.text
    for good in (f"127.0.0.1:{desk.desk.options.port}", f"localhost:{desk.desk.options.port}"):
        assert client.get("/court/", headers={"Host": good}).status_code == 200


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        desk: RunningDesk, client: httpx.Client) -> None:
    home = desk.desk.profile
    for attempt in [{"data": {"language": "fr", "next": "/"}},
                    {"data": {"language": "fr", "csrf_token": "wrong"}},
                    {"data": {"language": "fr"}, "headers": {"X-CSRF-Token": "wrong"}},
                    {"content": b'{"language": "fr"}',
                     "headers": {"Content-Type": "application/json"}}]:
        answer = client.post("/language", **attempt)  # type: ignore[arg-type]
        assert answer.status_code == 403, attempt
        assert "cadena_lang" not in answer.headers.get("set-cookie", "")
    assert not home.config_path.exists()


def test_a_post_with_the_csrf_token_in_the_form_or_header_is_let_in(
        desk: RunningDesk, client: httpx.Client) -> None:
    token = _csrf(client)
    by_field = client.post("/language", data={"csrf_token": token, "language": "pt",
                                              "next": "/court/"})
    assert by_field.status_code == 303
    assert "cadena_lang=pt" in by_field.headers["set-cookie"]
    by_header = client.post("/language", data={"language": "en"},
                            headers={"X-CSRF-Token": token})
    assert by_header.status_code == 303


def test_a_multipart_form_must_carry_the_token_as_its_first_part(
        desk: RunningDesk, client: httpx.Client) -> None:
    token = _csrf(client)
    files = {"certificate": ("c.json", b"{}", "application/json")}
    first = client.post("/court/", data={"csrf_token": token}, files=files)
    assert first.status_code == 200, first.text
    later = client.post("/court/", files={**files, "z": (None, token)})
    assert later.status_code == 403


def test_a_request_from_another_origin_is_refused_even_with_the_token(
        desk: RunningDesk, client: httpx.Client) -> None:
    token = _csrf(client)
    answer = client.post("/language", data={"csrf_token": token, "language": "fr"},
                         headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403
    same = client.post("/language", data={"csrf_token": token, "language": "fr"},
                       headers={"Origin": desk.url})
    assert same.status_code == 303


def test_every_answer_carries_a_strict_csp_and_pages_are_not_cached(
        desk: RunningDesk, client: httpx.Client) -> None:
    for path, cached in [("/court/", False), ("/nowhere", False),
                         ("/static/desk.css", True)]:
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert (answer.headers["cache-control"] == "no-store") is not cached
    with httpx.Client() as stranger:
        refused = stranger.get(desk.url + "/court/")
    assert refused.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in refused.headers["content-security-policy"]


def test_the_desk_listens_on_the_loopback_interface_only(desk: RunningDesk) -> None:
    assert desk.bound_addresses() == ["127.0.0.1"]
    from typer.main import get_command

    command = get_command(cli_app).commands["desk"]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--port" in options
    assert not {"--host", "--bind", "--address"} & options


def test_an_open_redirect_through_next_is_not_possible(
        desk: RunningDesk, client: httpx.Client) -> None:
    token = _csrf(client)
    for target in ["//evil.example/", "https://evil.example/", "/\\evil.example"]:
        answer = client.post("/language", data={"csrf_token": token, "language": "es",
                                                "next": target})
        assert answer.headers["location"] == "/"


def test_the_vendored_scripts_are_served_with_their_licences(desk: RunningDesk) -> None:
    static = Path(__file__).parents[2] / "client" / "desk" / "static" / "vendor"
    scripts = sorted(p.name for p in static.glob("*.js"))
    assert scripts == ["htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.min.js"]
    assert (static / "LICENSE-htmx.txt").exists()
    assert (static / "LICENSE-htmx-ext-sse.txt").exists()
    with httpx.Client() as stranger:
        for name in scripts:
            assert stranger.get(f"{desk.url}/static/vendor/{name}").status_code == 200

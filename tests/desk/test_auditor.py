"""The auditor's pages in a real browser against a real server, in Spanish and English.

The auditor sees the ledger's status (size, checkpoint, cosignatures),
verifies it with progress, then again after new entries (incremental: only
the new entries, after a consistency proof), exports it into a folder (the
export verifies offline), and, on a ledger rewritten in the database behind
the server's back, sees the fault located at the entry that was changed (on
SQLite and PostgreSQL). Screens captured, axe-core, no other origin; the
guard's refusals on the section's state-changing routes.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, select, update

from app.ledger.key import load_note_signer
from app.models.ledger import LEDGER_TABLES
from client.desk.sections.auditor import (
    RUNS,
    Verification,
    _export,
    _job_context,
    _run,
    load_state,
)
from client.desk.security import COOKIE
from client.desk.server import RunningDesk
from client.errors import AuditFailure, AuditFault
from client.export import ExportWriter, verify_export
from client.profile import Profile
from client.sdk import Client
from client.session import Credentials
from client.transparency import DirectoryAPI, wait_until_proven
from client.unlock import KeyAgent
from crypto import LiaisonKeys
from ledger import (
    Checkpoint,
    NoteVerifier,
    extension_line,
    key_log_head,
    open_checkpoint,
    sign_checkpoint,
)
from tests.desk.harness import PASSPHRASE, Screen, World, _profile, enrolled_world, open_desk

ScreenFactory = Callable[..., Screen]
TEXT = {
    "en": {"first": "first entry", "before": "verified before", "fails": "does not verify",
           "modified": "changed after it was recorded", "exported": "exported"},
    "es": {"first": "primera entrada", "before": "ya verificado", "fails": "no se verifica",
           "modified": "modificada después de registrarse", "exported": "exportó"},
}


def _coord(world: World) -> Client:
    return Client(world.server.url, credentials=Credentials("coord",
                                                            world.liaisons["coord"].keys))


def _auditor(world: World, liaison_id: str) -> Profile:
    """Enrol an auditor (through the coordinator's SDK) with a profile as a first run leaves."""
    keys = LiaisonKeys.generate()
    with _coord(world) as client:
        client.liaisons.enrol(liaison_id, "CO", "Olga Méndez", "auditor", keys=keys.public)
        now = datetime.now(UTC)  # no login without a clearance in force
        client.clearances.grant(liaison_id, "SECRET", now - timedelta(minutes=1),
                                now + timedelta(days=30))
        wait_until_proven(DirectoryAPI(client.session), liaison_id)
    return _profile(world.home, liaison_id, keys, world.server.url, world.ledger_key, liaison_id)


def _unlock(s: Screen) -> Page:
    page = s.launch()
    page.locator("#field-passphrase").fill(PASSPHRASE)
    page.locator("form.form button[type=submit]").click()
    expect(page.locator("h1")).not_to_contain_text("nlock")
    return page


def _grow(world: World) -> int:
    """Add entries to the ledger and wait until a checkpoint signs them; its size."""
    with _coord(world) as client:
        before = client.ledger.checkpoint_size()
        now = datetime.now(UTC)
        client.clearances.grant("ana", "RESTRICTED", now, now + timedelta(days=3))
        deadline = time.monotonic() + 60
        while client.ledger.checkpoint_size() <= before:
            assert time.monotonic() < deadline, "no new checkpoint was signed"
            time.sleep(0.2)
        return client.ledger.checkpoint_size()


def _verify(page: Page) -> None:
    page.locator("form[action='/auditor/verify'] button[type=submit]").click()
    expect(page.locator("#verification")).to_be_visible()
    expect(page.locator("#verification .verdict")).to_be_visible(timeout=60_000)


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_auditor_sees_the_status_verifies_incrementally_and_exports(
        world: World, screen: ScreenFactory, tmp_path: Path, language: str) -> None:
    words = TEXT[language]
    profile = _auditor(world, f"olga-{language}")
    with open_desk(profile) as desk:
        s = screen(desk, language)
        page = _unlock(s)
        with _coord(world) as client:
            served = client.ledger.checkpoint_size()
        page.goto(desk.url + "/auditor/")
        shown = int(re.sub(r"\D", "", page.locator("#ledger-size").inner_text()))
        assert shown >= served
        s.check("auditor-status")

        _verify(page)
        first = int(re.sub(r"\D", "", page.locator("#verified-size").inner_text()))
        assert first >= shown
        expect(page.locator("#continued")).to_contain_text(words["first"])
        assert int(re.sub(r"\D", "", page.locator("#downloaded").inner_text())) == first
        s.check("auditor-verified")
        stored = profile.read_json(profile.audit_path)
        assert stored is not None
        assert stored["size"] == first  # kept per profile, for the next run (and the CLI's)

        size = _grow(world)
        page.goto(desk.url + "/auditor/")
        _verify(page)
        expect(page.locator("#continued")).to_contain_text(words["before"])
        expect(page.locator("#continued")).to_contain_text(f"{first}")
        again = int(re.sub(r"\D", "", page.locator("#verified-size").inner_text()))
        downloaded = int(re.sub(r"\D", "", page.locator("#downloaded").inner_text()))
        assert again >= size
        assert downloaded == again - first  # only the new entries
        s.check("auditor-incremental")

        page.goto(desk.url + "/auditor/export")
        folder = tmp_path / "exports"
        folder.mkdir()
        page.locator("#field-folder").fill(str(tmp_path / "no-such-folder"))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        page.locator("#field-folder").fill(str(folder))
        page.locator("form.form button[type=submit]").click()
        expect(page.locator(".flash")).to_contain_text(words["exported"])
        s.check("auditor-exported")
        (exported,) = folder.glob("cadena-ledger-*.jsonl")
        checkpoint, _ = verify_export(exported, NoteVerifier.from_string(world.ledger_key), None)
        assert checkpoint.size >= again
        stored = profile.read_json(profile.audit_path)
        assert stored is not None
        assert stored["size"] == checkpoint.size  # the export verified it all: kept
        page.goto(desk.url + "/auditor/export")
        expect(page.locator("#field-folder")).to_have_value(str(folder))  # remembered


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_verification_page_follows_the_run_without_reloading(
        world: World, screen: ScreenFactory, language: str) -> None:
    """The page polls the run's progress (htmx) and stops once it ends.

    The run is set by hand here, so each of its states is seen for sure: a
    real run on this small ledger ends before the first poll.
    """
    profile = _auditor(world, f"olga-poll-{language}")
    with open_desk(profile) as desk:
        s = screen(desk, language)
        page = _unlock(s)
        run = Verification(full=False, previous_size=10, done=40, total=100)
        RUNS[desk.desk] = run
        page.goto(desk.url + "/auditor/verify")
        expect(page.locator("#verification-progress")).to_have_attribute("value", "40")
        s.check("auditor-progress")
        run.done = 80
        expect(page.locator("#verification-progress")).to_have_attribute("value", "80")
        run.failure = AuditFailure(AuditFault.ROLLBACK, "size 10 was verified before", 5)
        run.finished = True
        expect(page.locator("#fault-index")).to_have_text("5")
        expect(page.locator("#fault")).to_contain_text("rollback")
        expect(page.locator("[hx-get]")).to_have_count(0)  # no more polling
        assert page.url == desk.url + "/auditor/verify"  # never reloaded


@pytest.fixture
def fresh_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A world of its own (its ledger is rewritten), on SQLite and on PostgreSQL."""
    (tmp_path / "world").mkdir()
    with enrolled_world(tmp_path / "world", database_url=db_url) as built:
        yield built


def _rewrite(db_url: str, needle: bytes, replacement: bytes) -> int:
    """Change one stored entry behind the server's back; return its index."""
    table = LEDGER_TABLES.entries
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(table.c.index, table.c.entry).order_by(table.c.index))
            index, raw = next((i, bytes(e)) for i, e in rows if needle in bytes(e))
            conn.execute(update(table).where(table.c.index == index)
                         .values(entry=raw.replace(needle, replacement)))
    finally:
        engine.dispose()
    return int(index)


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_ledger_rewritten_in_the_database_is_caught_at_the_changed_entry(
        fresh_world: World, db_url: str, screen: ScreenFactory, language: str) -> None:
    words = TEXT[language]
    profile = _auditor(fresh_world, "olga")
    index = _rewrite(db_url, b'"state":"MX"', b'"state":"CO"')  # bruno moved
    with open_desk(profile) as desk:
        s = screen(desk, language)
        page = _unlock(s)
        page.goto(desk.url + "/auditor/")
        _verify(page)
        expect(page.locator("#verification .verdict")).to_contain_text(words["fails"])
        expect(page.locator("#fault")).to_contain_text(words["modified"])
        expect(page.locator("#fault")).to_contain_text("modified_entry")
        expect(page.locator("#fault-index")).to_have_text(str(index))
        s.check("auditor-tampered")
    assert profile.read_json(profile.audit_path) is None  # a failed run stores nothing


def _resign_key_root(world: World, db_url: str, server_dir: Path) -> int:
    """Re-sign the first checkpoint carrying a key log over another key root, with the real
    ledger key, as a dishonest operator would; return the checkpoint's last index."""
    table = LEDGER_TABLES.checkpoints
    verifier = NoteVerifier.from_string(world.ledger_key)
    signer = load_note_signer(server_dir / "ledger.key", verifier.name)
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(table.c.size, table.c.note).order_by(table.c.size))
            for _, note in rows:
                honest = open_checkpoint(note, verifier)
                head = key_log_head(honest)
                if head is not None:
                    break
            else:
                raise AssertionError("no checkpoint carries a key log")
            forged = Checkpoint(honest.origin, honest.size, honest.root,
                                (extension_line(head.size, bytes(32)),))
            conn.execute(update(table).where(table.c.size == honest.size)
                         .values(note=sign_checkpoint(forged, signer)))
    finally:
        engine.dispose()
    return honest.size - 1


def test_a_resigned_key_root_is_shown_as_a_key_log_fault(
        fresh_world: World, db_url: str, screen: ScreenFactory, tmp_path: Path) -> None:
    profile = _auditor(fresh_world, "olga")
    index = _resign_key_root(fresh_world, db_url, tmp_path / "world" / "server")
    with open_desk(profile) as desk:
        s = screen(desk, "es")
        page = _unlock(s)
        page.goto(desk.url + "/auditor/")
        _verify(page)
        expect(page.locator("#verification .verdict")).to_contain_text(TEXT["es"]["fails"])
        expect(page.locator("#fault")).to_contain_text("registro de claves que las entradas")
        expect(page.locator("#fault")).to_contain_text("key_log_mismatch")
        expect(page.locator("#fault-index")).to_have_text(str(index))
        s.check("auditor-key-log")
    assert profile.read_json(profile.audit_path) is None


def test_a_run_finishing_while_its_page_renders_is_shown_as_it_was_read() -> None:
    """The run's thread may fail between the page's reading of the job and its rendering.

    The page once read the fault's label from the job, then rendered the job itself: a run
    that failed in between showed a failure with no label (seen once in CI, as the bare
    ``key_log_mismatch``). The page must render one moment of the run.
    """
    job = Verification(full=True, done=3, total=9)
    context = _job_context(job)
    job.failure = AuditFailure(AuditFault.KEY_LOG_MISMATCH, "altered", 8)
    job.done, job.finished = 9, True
    shown = context["job"]
    assert (shown.finished, shown.failure, shown.done, context["fault"]) == (False, None, 3, "")
    assert shown.percent == 33


class _Meanwhile(Verification):
    """A run whose first progress runs ``then``: what another request did at that moment."""

    then: Callable[[], None] | None = None

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "done" and self.then is not None:
            then, self.then = self.then, None
            then()


def test_an_export_done_while_a_verification_runs_is_not_undone_by_it(
        world: World, tmp_path: Path) -> None:
    """A verification runs in its thread; meanwhile the ledger grows and an export (another
    tab) verifies it further and stores that.

    The run, on the older checkpoint, then stored its smaller size over the export's: the
    next verification would look for a rollback only from there. The run's first progress
    stands in for the moment the export runs.
    """
    profile = _auditor(world, "olga-race")
    agent = KeyAgent(profile)
    agent.unlock(PASSPHRASE)
    try:
        client = agent.client()
        exported: list[tuple[Path, int, int]] = []

        def export_meanwhile() -> None:
            _grow(world)
            exported.append(_export(client, profile, tmp_path))

        job = _Meanwhile(full=True)
        job.then = export_meanwhile
        _run(job, client, profile)
    finally:
        agent.lock()
    assert job.result is not None, job.error or job.failure
    [(_path, exported_size, _count)] = exported
    assert job.result.checkpoint.size < exported_size
    stored = load_state(profile)
    assert stored is not None
    assert stored.size == exported_size


def test_two_exports_to_one_name_at_once_do_not_write_into_each_other(tmp_path: Path) -> None:
    """Export clicked twice: two requests export, in the same second, under one name.

    Both writers staged into the same file, named by the process: the second emptied what
    the first had written, which the first then committed with a hole of NUL bytes where
    its first lines were; the second's commit found no staged file and failed. Then the
    second replaced the first under their one name; now each keeps a name of its own.
    """
    path = tmp_path / "cadena-ledger-20261207T084500Z.jsonl"
    entry = b"e" * 65536  # more than a write buffer: it reaches the file as it is written
    with ExportWriter(path) as first:
        first.write(0, entry)
        with ExportWriter(path) as second:  # the second click, while the first still writes
            first.write(1, entry)
            assert first.commit(replace=False) == path
            for index in range(3):
                second.write(index, entry)
            kept = second.commit(replace=False)
    assert kept == tmp_path / "cadena-ledger-20261207T084500Z-2.jsonl"
    assert [json.loads(line)["index"] for line in path.read_bytes().splitlines()] == [0, 1]
    assert [json.loads(line)["index"] for line in kept.read_bytes().splitlines()] == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, kept.name])


@given(taken=st.sets(st.integers(min_value=1, max_value=6), max_size=6))
def test_an_export_never_replaces_a_file_already_there(taken: set[int]) -> None:
    """An auditor's folder may hold files of that name already (an earlier export copied
    back, another tool's): the desk's export keeps them and takes the first free name."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cadena-ledger-20261207T084500Z.jsonl"
        names = [path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
                 for n in sorted(taken)]
        for name in names:
            name.write_bytes(b"kept")
        with ExportWriter(path) as writer:
            writer.write(0, b"new")
            kept = writer.commit(replace=False)
        free = min(set(range(1, 8)) - taken)
        assert kept == (path if free == 1 else path.with_name(f"{path.stem}-{free}.jsonl"))
        assert all(name.read_bytes() == b"kept" for name in names)
        assert json.loads(kept.read_bytes())["index"] == 0
        assert not [p for p in Path(folder).iterdir() if p.name.endswith(".partial")]


# -- the guard on the section's state-changing routes --------------------------


@pytest.fixture(scope="module")
def auditor_desk(world: World) -> Iterator[RunningDesk]:
    """An auditor's desk, unlocked (a refusal must hold even then)."""
    with open_desk(_auditor(world, "olga-guard")) as desk:
        desk.desk.agent.unlock(PASSPHRASE)
        yield desk


@pytest.mark.parametrize("path", ["/auditor/verify", "/auditor/export"])
def test_each_action_is_refused_without_cookie_with_another_host_or_without_csrf(
        auditor_desk: RunningDesk, tmp_path: Path, path: str) -> None:
    form = {"folder": str(tmp_path), "full": "yes"}
    client = httpx.Client(base_url=auditor_desk.url, follow_redirects=False)
    try:
        assert client.get(auditor_desk.desk.launch_url().removeprefix(auditor_desk.url)
                          ).status_code == 303
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/court/").text)
        assert token
        with httpx.Client(base_url=auditor_desk.url, cookies={COOKIE: "guess"}) as stranger:
            assert stranger.post(path, data={**form, "csrf_token": token.group(1)}
                                 ).status_code == 403
        assert client.post(path, data={**form, "csrf_token": token.group(1)},
                           headers={"Host": "evil.example"}).status_code == 421
        assert client.post(path, data=form).status_code == 403
    finally:
        client.close()
    profile = auditor_desk.desk.profile
    assert profile.read_json(profile.audit_path) is None  # no verification ran
    assert not list(tmp_path.iterdir())  # no export was written

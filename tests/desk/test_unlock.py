"""KeyAgent: the passphrase once, logins renewed silently, locked on idle or on demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from client.unlock import KeyAgent, Locked, WrongPassphrase
from crypto import LiaisonKeys
from tests.desk.harness import PASSPHRASE, World, open_desk


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_wrong_passphrase_opens_nothing(world: World) -> None:
    agent = KeyAgent(world.liaisons["ana"].profile)
    for wrong in ["", "Correct horse battery staple", PASSPHRASE + " "]:
        with pytest.raises(WrongPassphrase):
            agent.unlock(wrong)
        assert not agent.unlocked
        with pytest.raises(Locked):
            agent.client()


def test_unlocked_once_the_agent_logs_in_and_renews_its_login_without_the_passphrase(
        world: World) -> None:
    agent = KeyAgent(world.liaisons["ana"].profile)
    agent.unlock(PASSPHRASE)
    try:
        client = agent.client()
        first = agent.login()
        assert agent.me().id == "ana"
        assert agent.alerts == []  # every key entry under "ana" is hers
        expired = first.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(1)})
        client.session._token = expired  # as a token looks once it has expired
        assert client.liaisons.get("bruno").state_code == "MX"
        renewed = client.session.token
        assert renewed is not None
        assert renewed.token != first.token
        client.session._token = renewed.model_copy(update={"token": "revoked-or-forged"})
        assert client.liaisons.get("ana").name == "Ana Restrepo"  # 401, then a new login
        assert client.session.token is not None
        assert client.session.token.token not in {first.token, "revoked-or-forged"}
    finally:
        agent.lock()


def test_the_agent_locks_itself_after_the_idle_time(world: World) -> None:
    ticks = Ticks()
    agent = KeyAgent(world.liaisons["bruno"].profile, idle=60, monotonic=ticks)
    agent.unlock(PASSPHRASE)
    ticks.now += 59
    agent.client()  # a use: the idle time starts again
    ticks.now += 59
    assert agent.unlocked
    ticks.now += 2
    assert not agent.unlocked
    with pytest.raises(Locked):
        agent.client()


def test_lock_drops_the_keys_the_client_and_its_token(world: World) -> None:
    agent = KeyAgent(world.liaisons["bruno"].profile)
    agent.unlock(PASSPHRASE)
    client = agent.client()
    agent.login()
    assert client.session.credentials is not None
    held = client.session.credentials.signing_keys()
    assert isinstance(held, LiaisonKeys)  # the desk holds the key set itself
    assert held.public == world.liaisons["bruno"].keys.public
    agent.lock()
    assert bytes(held.signing_key) == bytes(32)  # overwritten in place, not only dropped
    assert bytes(held.encryption_key) == bytes(32)
    assert bytes(world.liaisons["bruno"].keys.signing_key) != bytes(32)  # other copies intact
    assert not (world.liaisons["bruno"].profile.path / "session.json").exists()  # token: memory
    assert not agent.unlocked
    assert agent.known_me is None
    assert client.session.token is None
    assert client.session.credentials is None
    with pytest.raises(Locked):
        agent.client()
    agent.unlock(PASSPHRASE)  # and the passphrase opens it again
    try:
        assert agent.client() is not client
    finally:
        agent.lock()


def test_the_idle_lock_wipes_the_keys_on_time_without_waiting_for_a_request(
        world: World) -> None:
    ticks = Ticks()
    agent = KeyAgent(world.liaisons["ana"].profile, idle=60, monotonic=ticks)
    agent.unlock(PASSPHRASE)
    client = agent.client()
    agent.login()
    ticks.now += 61
    agent.expire()  # what the desk's watcher does every few seconds
    assert client.session.credentials is None  # gone before any further use
    assert client.session.token is None
    assert not agent.unlocked


def test_the_page_chrome_reads_the_agent_at_one_moment(world: World) -> None:
    """The layout read "unlocked" and then who the liaison is, two reads of the agent: a
    lock (the idle time running out) between them rendered an unlocked desk with none of
    the liaison's sections. Here the idle time runs out between any two looks at the clock.
    """
    with open_desk(world.liaisons["ana"].profile, idle=60) as running:
        agent = running.desk.agent
        agent.unlock(PASSPHRASE)
        try:
            me = agent.me()
            ticks = iter([59.0, 61.0, 200.0, 300.0])
            agent._monotonic = lambda: next(ticks)  # the next look finds it idle too long
            agent._last_use = 0.0
            chrome = running.desk.chrome()
            sections = {s.key for s in chrome["nav"] if s.needs_unlock}
            assert (chrome["unlocked"], chrome["me"] is not None, bool(sections)) in {
                (True, True, True), (False, False, False)}
            if chrome["unlocked"]:
                assert chrome["me"] == me
        finally:
            agent.lock()

"""``cadena agent``: unlock a profile once for a working session (see :mod:`client.agent`).

``start`` asks the passphrase (or takes ``CADENA_PASSPHRASE``), starts the
agent process (:mod:`client.agent_server`) with it on a pipe, and waits for
``ready``: a wrong passphrase is reported here, not later. ``stop`` locks and
ends it; ``status`` shows it. While it runs, every command of the profile
signs, opens and logs in through it, without the passphrase or the KDF.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from client.agent import AgentConnection, find_agent, socket_path
from client.cli.common import (
    JsonOpt,
    ProfileOpt,
    err,
    guarded,
    open_profile,
    out,
    passphrase_source,
    print_json,
)
from client.errors import ProfileError

agent_app = typer.Typer(no_args_is_help=True, help=(
    "The local agent: unlock a profile once; commands then need no passphrase."))

START_TIMEOUT = 600.0
"""Seconds to wait for the agent to unlock (the sensitive KDF takes a few)."""


@agent_app.command("start")
@guarded
def start(
    ctx: typer.Context, profile: ProfileOpt = None,
    lock_after: Annotated[float, typer.Option(
        "--lock-after", help="Minutes without use after which the agent locks and exits.",
        min=0.05)] = 15,
) -> None:
    """Unlock the profile's keys in a background agent (asks the passphrase once)."""
    target = open_profile(ctx, profile)
    if not target.has_keys():
        raise ProfileError(f"profile {target.name!r} has no keys")
    if find_agent(target) is not None:
        raise ProfileError(f"an agent already runs for profile {target.name!r} "
                           "(cadena agent status)")
    passphrase = passphrase_source()() if target.is_encrypted() else ""
    if "\n" in passphrase:
        raise ProfileError("a passphrase cannot contain a line break")
    target.ensure_dir()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        # -P: ``-m`` would put the working directory first on sys.path, and a
        # ``client`` or ``crypto`` planted there would run holding the keys.
        [sys.executable, "-P", "-m", "client.agent_server", "--profile", target.name,
         "--home", str(target.path.parent), "--lock-after", str(lock_after * 60)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, text=True, env=_agent_env())
    stdin, stdout = process.stdin, process.stdout
    if stdin is None or stdout is None:  # never: both are pipes
        raise ProfileError("the agent's pipes did not open")
    stdin.write(passphrase + "\n")
    stdin.close()
    del passphrase
    line = stdout.readline().strip()
    stdout.close()
    if line != "ready":
        process.wait(timeout=START_TIMEOUT)
        raise ProfileError(line.removeprefix("error: ") or "the agent did not start")
    err().print(f"agent for profile [bold]{target.name}[/] unlocked (pid {process.pid}); it "
                f"locks after {lock_after:g} minutes without use; `cadena agent stop` ends it")


def _agent_env() -> dict[str, str]:
    # The passphrase went on the pipe; the agent process does not keep it in its environment.
    return {k: v for k, v in os.environ.items() if k != "CADENA_PASSPHRASE"}


def _running(ctx: typer.Context, profile: str | None) -> AgentConnection:
    target = open_profile(ctx, profile)
    agent = find_agent(target)
    if agent is None:
        raise ProfileError(f"no agent runs for profile {target.name!r}")
    return agent


@agent_app.command("stop")
@guarded
def stop(ctx: typer.Context, profile: ProfileOpt = None) -> None:
    """Lock the agent (its keys are wiped) and end it."""
    _running(ctx, profile).stop()
    err().print("agent stopped; its keys were wiped")


@agent_app.command("status")
@guarded
def status(ctx: typer.Context, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Whether an agent runs for the profile, and for whom."""
    target = open_profile(ctx, profile)
    agent = find_agent(target)
    state = agent.status() if agent is not None else None
    if as_json:
        print_json({"running": state is not None, "socket": str(socket_path(target)),
                    **({k: v for k, v in state.items() if k != "ok"} if state else {})})
        return
    if state is None:
        out().print(f"no agent runs for profile {target.name}")
        raise typer.Exit(2)
    out().print(f"agent for profile {state['profile']} (liaison {state['liaison']}, key "
                f"{state['key_id']}), pid {state['pid']}, locks after "
                f"{float(state['lock_after']) / 60:g} minutes without use")
    for alert in state.get("alerts") or []:
        err().print(f"[bold red]{alert['kind']}:[/] {alert['detail']}")

"""Request dependencies that are not the unit of work's (that one is ``app.ledger.SessionDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

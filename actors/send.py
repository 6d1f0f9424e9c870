"""Sending the next stage's message through the broker the actors are registered on."""

from __future__ import annotations

from typing import Any

import dramatiq

from . import names


def send(stage: str, *args: Any) -> dramatiq.Message[Any]:
    return dramatiq.get_broker().get_actor(names.ACTOR[stage]).send(*args)

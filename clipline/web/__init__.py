"""The operations team's web page, served by ``clipline api`` at ``/`` (server-rendered, no build step).

``build_router(ctx, enqueue)`` returns the page's APIRouter; ``session.cookie_grants`` lets the JSON
API's auth accept the page's login cookie for reads (the player's video, report.json).
"""

from __future__ import annotations

from .routes import build_router
from .session import cookie_grants

__all__ = ["build_router", "cookie_grants"]

"""The Flask front door of seatgate: extension, pages, JSON API and forward-auth."""

from __future__ import annotations

from .context import admin_required, current_portal_user, seat_required
from .extension import SeatGate
from .sessions import PortalUser

__all__ = ["PortalUser", "SeatGate", "admin_required", "current_portal_user", "seat_required"]

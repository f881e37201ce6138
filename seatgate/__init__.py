"""seatgate: seat-enforcement authentication for per-user licensed intranet portals.

The core (this package) verifies vendor-signed licence tokens, keeps the seat
ledger in the database and makes the login decision. Web frameworks, the
directory and CSV sources live in :mod:`seatgate.adapters`.
"""

from seatgate.errors import SeatgateError

__all__ = ["SeatgateError", "__version__"]
__version__ = "0.1.0.dev0"

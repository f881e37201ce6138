"""The seat ledger: the seat lock, the stored entitlement, seat rows and seat use over time."""

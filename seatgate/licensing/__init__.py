"""Licensing: vendor tokens, the entitlement, the updates lifecycle and the licence report."""

"""Sessions: web sessions (the service and the per-request check) and the signing secret."""

"""The audit log: events recorded with every change, and their hash chain."""

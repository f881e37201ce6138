"""The login gate: the login decision and the failed-login rate limit."""

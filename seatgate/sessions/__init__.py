"""Sessions: the session-signing secret."""

"""Notifications: the date-based reminders, their texts, and delivering the outbox."""

"""Read-only reports shared by every front door: metrics and the JSON documents."""

"""The ``seatgate`` command line."""

"""The edges of seatgate, installed as ``seatgate.adapters``.

Web frameworks, the directory (ldap3) and CSV files live here; the core in
``seatgate`` never imports them.
"""

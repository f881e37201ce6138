"""Tests against real directory servers (Samba AD DC, OpenLDAP) on loopback."""

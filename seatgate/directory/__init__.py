"""Accounts from a directory (Active Directory, OpenLDAP): configuration, sync planning.

The protocol side (ldap3) lives in :mod:`seatgate.adapters.ldap`; this
package only knows directory entries as plain records.
"""

"""Accounts: the account service, login normalisation and password hashing."""

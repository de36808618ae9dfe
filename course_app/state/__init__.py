"""Reflex State: mirrors of the database for one browser tab.

Public vars reach the browser and public methods can be called from it with any
arguments, so every handler checks the session cookie and ownership itself (via
the services) and validates its arguments.
"""

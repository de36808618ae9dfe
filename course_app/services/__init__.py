"""Business rules over the database: plain functions with keyword-only arguments.

No Reflex imports here; State handlers and API routes both call these.
"""

"""Passwords, browser sessions and personal API tokens."""

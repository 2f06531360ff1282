"""Venue adapters."""

"""Immutable frontend releases: layout, building one, switching PM2 to it."""

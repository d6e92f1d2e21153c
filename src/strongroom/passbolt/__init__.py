"""Facts about passbolt that several layers of strongroom use (its database schema, its seed data)."""

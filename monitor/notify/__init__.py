"""Notifications: pure rendering, channel config, apprise sender, the outbox delivery worker."""

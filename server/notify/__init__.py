"""Delivering the notification outbox (ca/notices/): SMTP and signed webhooks, and the jobs that
plan on the leader and deliver on every server process."""


class DeliveryError(Exception):
    """A one-line reason a message was not delivered (kept as the outbox row's last error; retried)."""

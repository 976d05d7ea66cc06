"""The notification outbox: one row per message to deliver, kept after delivery as the record."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ca.store.tables import Base, Id, UTCDateTime, table_of


class OutboxRow(Base):
    """A message, from being due to delivered (or given up on after its last retry).

    ``key`` is unique: "<rule>:<certificate id>:<level>:<channel>:<recipient>" for a certificate's
    notice, "digest:<day>:<channel>:<recipient>" for a digest. Inserting an existing key does
    nothing, which is what makes a notice once-only across processes and restarts."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "gave_up_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(700), unique=True)
    rule: Mapped[str] = mapped_column(String(64))  # expiry:30d | weak-key | revoked-deployed | digest ...
    level: Mapped[str] = mapped_column(String(16))  # owner | team | admin
    inventory_id: Mapped[int | None] = mapped_column(Id)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    recipient: Mapped[str] = mapped_column(String(512))  # an address, or a configured webhook's name
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # plain text for email; the JSON document for a webhook
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(255))  # the process sending it now
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    gave_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


outbox = table_of(OutboxRow)

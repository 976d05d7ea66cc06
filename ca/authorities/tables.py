"""The ``authorities`` table: one row per CA certificate generation (see ca/authorities/__init__.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ca.store.tables import Base, UTCDateTime, table_of


class AuthorityRow(Base):
    __tablename__ = "authorities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # issuer name in store and URLs
    family: Mapped[str] = mapped_column(String(64), index=True)  # what profiles and commands name
    generation: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # "issuing" | "root"
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the registry name that signed it
    der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None: a CSR awaits its certificate
    chain: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # PEM above it (an external root's)
    signer: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON key location; None: the config's
    links: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # PEM: root rollover link certificates
    activate_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


authorities = table_of(AuthorityRow)

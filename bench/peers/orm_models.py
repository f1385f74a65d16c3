"""SQLAlchemy ORM classes mapped by hand onto the tables Loom built (for sqladmin and starlette-admin)."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDUSTRIES = ("manufacturing", "retail", "finance", "energy", "logistics", "healthcare", "education", "construction", "software", "hospitality")
REGIONS = ("north", "south", "east", "west", "central", "overseas")
RATINGS = ("hot", "warm", "cold")
STAGES = ("prospect", "qualified", "proposal", "negotiation", "won", "lost")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class System:
    """Loom's system columns, filled the way Loom fills them on create."""

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    owner: Mapped[int | None] = mapped_column(sa.BigInteger, default=1)
    created_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime, default=_now)
    created_by: Mapped[int | None] = mapped_column(sa.BigInteger, default=1)
    updated_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime, default=_now, onupdate=_now)
    updated_by: Mapped[int | None] = mapped_column(sa.BigInteger, default=1)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=1)


class Customer(System, Base):
    __tablename__ = "customer"
    name: Mapped[str] = mapped_column(sa.String(140))
    industry: Mapped[str | None] = mapped_column(sa.String(48))
    region: Mapped[str | None] = mapped_column(sa.String(48))
    rating: Mapped[str | None] = mapped_column(sa.String(48))
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    employees: Mapped[int | None] = mapped_column(sa.BigInteger)
    founded: Mapped[dt.date | None] = mapped_column(sa.Date)
    city: Mapped[str | None] = mapped_column(sa.String(60))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    active: Mapped[bool | None] = mapped_column(sa.Boolean, default=True)
    notes: Mapped[str | None] = mapped_column(sa.Text)

    def __str__(self) -> str:
        return self.name


class Contact(System, Base):
    __tablename__ = "contact"
    full_name: Mapped[str] = mapped_column(sa.String(100))
    customer_id: Mapped[int | None] = mapped_column("customer", sa.BigInteger, sa.ForeignKey("customer.id"))
    customer: Mapped[Customer | None] = relationship(foreign_keys=[customer_id])
    title: Mapped[str | None] = mapped_column(sa.String(48))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    birthday: Mapped[dt.date | None] = mapped_column(sa.Date)

    def __str__(self) -> str:
        return self.full_name


class Opportunity(System, Base):
    __tablename__ = "opportunity"
    title: Mapped[str] = mapped_column(sa.String(140))
    customer_id: Mapped[int | None] = mapped_column("customer", sa.BigInteger, sa.ForeignKey("customer.id"))
    customer: Mapped[Customer | None] = relationship(foreign_keys=[customer_id])
    contact_id: Mapped[int | None] = mapped_column("contact", sa.BigInteger, sa.ForeignKey("contact.id"))
    contact: Mapped[Contact | None] = relationship(foreign_keys=[contact_id])
    stage: Mapped[str | None] = mapped_column(sa.String(48))
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(18, 2))
    probability: Mapped[int | None] = mapped_column(sa.BigInteger)
    close_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    source: Mapped[str | None] = mapped_column(sa.String(48))

    def __str__(self) -> str:
        return self.title


def engine() -> sa.Engine:
    """The same engine settings Loom uses (WAL + busy timeout on SQLite, a pool of 10 on PostgreSQL)."""
    url = os.environ["BENCH_DB_URL"]
    if url.startswith("sqlite"):
        db = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(db, "connect")
        def _pragmas(conn: Any, _rec: Any) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        return db
    return sa.create_engine(url, pool_size=10, max_overflow=10)

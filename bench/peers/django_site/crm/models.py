"""Unmanaged models on the tables Loom built (Django never creates or alters them)."""

from __future__ import annotations

import datetime as dt

from django.db import models

INDUSTRIES = ("manufacturing", "retail", "finance", "energy", "logistics", "healthcare", "education", "construction", "software", "hospitality")
REGIONS = ("north", "south", "east", "west", "central", "overseas")
RATINGS = ("hot", "warm", "cold")
TITLES = ("ceo", "cfo", "cto", "buyer", "engineer", "assistant")
STAGES = ("prospect", "qualified", "proposal", "negotiation", "won", "lost")


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v) for v in values]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class System(models.Model):
    """Loom's system columns, filled the way Loom fills them on create."""

    owner = models.BigIntegerField(null=True, default=1, editable=False)
    created_at = models.DateTimeField(null=True, default=_now, editable=False)
    created_by = models.BigIntegerField(null=True, default=1, editable=False)
    updated_at = models.DateTimeField(null=True, default=_now, editable=False)
    updated_by = models.BigIntegerField(null=True, default=1, editable=False)
    version = models.BigIntegerField(default=1, editable=False)

    class Meta:
        abstract = True


class Customer(System):
    name = models.CharField(max_length=140)
    industry = models.CharField(max_length=48, null=True, blank=True, choices=_choices(INDUSTRIES))
    region = models.CharField(max_length=48, null=True, blank=True, choices=_choices(REGIONS))
    rating = models.CharField(max_length=48, null=True, blank=True, choices=_choices(RATINGS))
    amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    employees = models.BigIntegerField(null=True, blank=True)
    founded = models.DateField(null=True, blank=True)
    city = models.CharField(max_length=60, null=True, blank=True)
    email = models.EmailField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=32, null=True, blank=True)
    active = models.BooleanField(null=True, default=True)
    notes = models.TextField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "customer"

    def __str__(self) -> str:
        return self.name


class Contact(System):
    full_name = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer", null=True, blank=True, db_constraint=False)
    title = models.CharField(max_length=48, null=True, blank=True, choices=_choices(TITLES))
    email = models.EmailField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=32, null=True, blank=True)
    birthday = models.DateField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "contact"

    def __str__(self) -> str:
        return self.full_name


class Opportunity(System):
    title = models.CharField(max_length=140)
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_column="customer", null=True, blank=True, db_constraint=False)
    contact = models.ForeignKey(Contact, models.DO_NOTHING, db_column="contact", null=True, blank=True, db_constraint=False)
    stage = models.CharField(max_length=48, null=True, blank=True, choices=_choices(STAGES))
    amount = models.DecimalField(max_digits=18, decimal_places=2, null=True, blank=True)
    probability = models.BigIntegerField(null=True, blank=True)
    close_date = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=48, null=True, blank=True)

    class Meta:
        managed = False
        db_table = "opportunity"

    def __str__(self) -> str:
        return self.title

"""sqladmin on the bench tables: list (8 columns, a filter, sort, search), details, create; no authentication backend."""

# ruff: noqa: RUF012  (the framework's declarative class attributes)

from __future__ import annotations

from sqladmin import Admin, ModelView
from sqladmin.filters import StaticValuesFilter
from starlette.applications import Starlette

from bench.peers.orm_models import INDUSTRIES, REGIONS, STAGES, Contact, Customer, Opportunity, engine


class CustomerAdmin(ModelView, model=Customer):
    column_list = [Customer.name, Customer.industry, Customer.region, Customer.rating, Customer.amount, Customer.employees,
                   Customer.founded, Customer.city]
    column_sortable_list = [Customer.name, Customer.amount, Customer.employees, Customer.founded]
    column_default_sort = [(Customer.amount, True)]
    column_searchable_list = [Customer.name]
    column_filters = [StaticValuesFilter(Customer.industry, [(v, v) for v in INDUSTRIES]),
                      StaticValuesFilter(Customer.region, [(v, v) for v in REGIONS])]
    form_columns = [Customer.name, Customer.industry, Customer.region, Customer.rating, Customer.amount, Customer.employees,
                    Customer.founded, Customer.city, Customer.email, Customer.phone]
    page_size = 25


class ContactAdmin(ModelView, model=Contact):
    column_list = [Contact.full_name, Contact.customer, Contact.title, Contact.email, Contact.phone, Contact.birthday]
    column_default_sort = [(Contact.full_name, False)]
    column_searchable_list = [Contact.full_name]
    page_size = 25


class OpportunityAdmin(ModelView, model=Opportunity):
    column_list = [Opportunity.title, Opportunity.customer, Opportunity.stage, Opportunity.amount, Opportunity.probability,
                   Opportunity.close_date, Opportunity.source]
    column_default_sort = [(Opportunity.amount, True)]
    column_filters = [StaticValuesFilter(Opportunity.stage, [(v, v) for v in STAGES])]
    page_size = 25


def app() -> Starlette:
    """The ASGI app (a factory, one per worker)."""
    made = Starlette()
    admin = Admin(made, engine())
    for view in (CustomerAdmin, ContactAdmin, OpportunityAdmin):
        admin.add_view(view)
    return made

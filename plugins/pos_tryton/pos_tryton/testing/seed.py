"""Seed a fresh Tryton database with a restaurant, through proteus (Tryton's own client library).

Run as a script, in the test environment only, against a database whose modules are activated::

    python -m pos_tryton.testing.seed CONFIG_FILE DATABASE DATA_FILE

It creates what a venue's administrator would set up before connecting posintegrator: a company
with a fiscal year and a minimal chart of accounts, two VAT rates (food and drinks) on two
accounting categories, menu categories, the products of ``restaurant.json``, a sale point with a
prepaid and a cash payment method, and two users: the integration user and a cashier. It prints
the ids the tests need as one JSON object on stdout.

This is the only module of the plugin that imports Tryton code (proteus, LGPL-3.0); the plugin
itself talks to Tryton over JSON-RPC only.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from proteus import Model, Wizard, config

#: The ids the seeded database is known by, printed for the tests.
Seeded = dict[str, Any]


def _xml_id(name: str) -> int:
    """The database id of a record a module defines, e.g. ``sale_point.group_sale_point``."""
    model_data = Model.get("ir.model.data")
    return int(model_data.get_id(name, {}))


def _company(data: dict[str, Any]) -> Any:
    """The company, its currency and its time zone; the admin user switched to it."""
    currency_model = Model.get("currency.currency")
    currency = currency_model(
        name="Euro", code=data["currency"], symbol="€", rounding=Decimal("0.01")
    )
    currency.save()
    party = Model.get("party.party")(name=data["name"])
    party.save()
    wizard = Wizard("company.company.config")
    wizard.execute("company")
    wizard.form.party = party
    wizard.form.currency = currency
    wizard.form.timezone = data["timezone"]
    wizard.execute("add")
    user_model = Model.get("res.user")
    config.get_config()._context = user_model.get_preferences(True, {})
    (company,) = Model.get("company.company").find()
    return company


def _chart(company: Any) -> dict[str, Any]:
    """A minimal chart of accounts from Tryton's own template; the accounts the seed uses."""
    template = Model.get("account.account.template")(_xml_id("account.account_template_root_en"))
    wizard = Wizard("account.create_chart")
    wizard.execute("account")
    wizard.form.account_template = template
    wizard.form.company = company
    wizard.execute("create_account")
    account_model = Model.get("account.account")

    def find(domain: list[Any]) -> Any:
        found = account_model.find([("company", "=", company.id), *domain], limit=1)
        return found[0]

    accounts = {
        "receivable": find([("type.receivable", "=", True)]),
        "payable": find([("type.payable", "=", True)]),
        "revenue": find([("type.revenue", "=", True)]),
        "expense": find([("type.expense", "=", True)]),
        "cash": find([("code", "=", "1.1.1")]),
        "tax": find([("code", "=", "6.3.6")]),
    }
    # As Tryton's own test tools do: only accounts that require a party qualify.
    if accounts["receivable"].party_required:
        wizard.form.account_receivable = accounts["receivable"]
    if accounts["payable"].party_required:
        wizard.form.account_payable = accounts["payable"]
    wizard.form.category_account_expense = accounts["expense"]
    wizard.form.category_account_revenue = accounts["revenue"]
    wizard.execute("create_properties")
    return accounts


def _strict_sequence(name: str, kind: str, company: Any) -> Any:
    """A gapless sequence of the given type ("Account Move", "Invoice", "POS")."""
    (sequence_type,) = Model.get("ir.sequence.type").find([("name", "=", kind)], limit=1)
    sequence = Model.get("ir.sequence.strict")(
        name=name, sequence_type=sequence_type, company=company
    )
    sequence.save()
    return sequence


def _fiscal_years(company: Any) -> None:
    """Fiscal years with monthly periods for this year and the next (tests may run at New Year)."""
    this_year = dt.date.today().year
    for year in (this_year, this_year + 1):
        fiscal_year = Model.get("account.fiscalyear")(
            name=str(year),
            start_date=dt.date(year, 1, 1),
            end_date=dt.date(year, 12, 31),
            company=company,
            move_sequence=_strict_sequence(f"Moves {year}", "Account Move", company),
        )
        # The invoice module wants invoice numbering on every fiscal year.
        invoices = _strict_sequence(f"Invoices {year}", "Invoice", company)
        (numbering,) = fiscal_year.invoice_sequences
        numbering.out_invoice_sequence = invoices
        numbering.in_invoice_sequence = invoices
        numbering.out_credit_note_sequence = invoices
        numbering.in_credit_note_sequence = invoices
        fiscal_year.save()
        fiscal_year.click("create_period")


def _taxes(data: dict[str, Any], accounts: dict[str, Any]) -> dict[str, Any]:
    taxes = {}
    for key, spec in data.items():
        tax = Model.get("account.tax")(
            name=spec["name"],
            description=spec["name"],
            type="percentage",
            rate=Decimal(spec["rate"]),
            invoice_account=accounts["tax"],
            credit_note_account=accounts["tax"],
        )
        tax.save()
        taxes[key] = tax
    return taxes


def _accounting_categories(
    data: dict[str, Any], taxes: dict[str, Any], accounts: dict[str, Any]
) -> dict[str, Any]:
    categories = {}
    for key, spec in data.items():
        category = Model.get("product.category")(name=spec["name"], accounting=True)
        category.account_revenue = accounts["revenue"]
        category.account_expense = accounts["expense"]
        category.customer_taxes.append(taxes[spec["tax"]])
        category.save()
        categories[key] = category
    return categories


def _menu_categories(data: list[dict[str, Any]]) -> dict[str, Any]:
    categories: dict[str, Any] = {}
    for spec in data:
        category = Model.get("product.category")(name=spec["name"])
        if spec.get("parent"):
            category.parent = categories[spec["parent"]]
        category.save()
        categories[spec["key"]] = category
    return categories


def _products(
    data: list[dict[str, Any]], accounting: dict[str, Any], menu: dict[str, Any]
) -> dict[str, int]:
    uom_model = Model.get("product.uom")
    units = {"Unit": uom_model.find([("name", "=", "Unit")])[0]}
    ids: dict[str, int] = {}
    for spec in data:
        unit_name = spec.get("unit", "Unit")
        if unit_name not in units:
            units[unit_name] = uom_model.find([("name", "=", unit_name)])[0]
        template = Model.get("product.template")(
            name=spec["name"],
            type="goods",
            default_uom=units[unit_name],
            salable=spec.get("salable", True),
            account_category=accounting[spec["tax"]],
        )
        template.sale_uom = units[unit_name]
        template.gross_price = Decimal(spec["gross"])
        if spec.get("category"):
            # A fresh instance: a record already held by another relation cannot be appended.
            template.categories.append(Model.get("product.category")(menu[spec["category"]].id))
        variants = spec.get("variants") or [{"description": spec.get("description")}]
        (first,) = template.products
        for index, variant in enumerate(variants):
            product = first if index == 0 else template.products.new()
            if variant.get("code"):
                product.suffix_code = variant["code"]
            if variant.get("description"):
                product.description = variant["description"]
        template.save()
        for product, variant in zip(template.products, variants, strict=True):
            if variant.get("gross"):
                # A variant's own price is saved on the variant itself: proteus does not save
                # company-dependent values of records nested in the template.
                product.gross_price = Decimal(variant["gross"])
                product.save()
        for product in template.products:
            label = spec["name"] if len(variants) == 1 else f"{spec['name']}/{product.suffix_code}"
            ids[label] = product.id
        if not spec.get("active", True):
            template.active = False
            template.save()
    return ids


def _sale_point(
    data: dict[str, Any], company: Any, accounts: dict[str, Any], methods: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    location_model = Model.get("stock.location")
    sequence = _strict_sequence("Sale point", "POS", company)
    point = Model.get("sale.point")(
        name=data["name"],
        tax_included=data["tax_included"],
        sequence=sequence,
        journal=Model.get("account.journal").find([("type", "=", "revenue")], limit=1)[0],
        storage_location=location_model.find([("code", "=", "STO")])[0],
        customer_location=location_model.find([("code", "=", "CUS")])[0],
    )
    point.save()
    created = {}
    for key, spec in methods.items():
        method = Model.get("sale.point.payment.method")(
            name=spec["name"], cash=spec["cash"], account=accounts["cash"]
        )
        method.save()
        created[key] = method
    return point, created


def _users(data: dict[str, Any], company: Any) -> dict[str, int]:
    """The integration user and a cashier: in the Sale Point group, employees of the company."""
    group_id = _xml_id("sale_point.group_sale_point")
    ids = {}
    for key, spec in data.items():
        party = Model.get("party.party")(name=spec["name"])
        party.save()
        employee = Model.get("company.employee")(party=party, company=company)
        employee.save()
        user = Model.get("res.user")(name=spec["name"], login=spec["login"])
        user.password = spec["password"]
        # Fresh instances: a record held by one relation cannot be appended to another.
        user.groups.append(Model.get("res.group")(group_id))
        user.companies.append(Model.get("company.company")(company.id))
        user.company = company
        user.employees.append(employee)
        user.employee = employee
        user.save()
        ids[key] = user.id
    return ids


def seed(config_file: str, database: str, data: dict[str, Any]) -> Seeded:
    """Create the restaurant in ``database``; return the ids the tests need."""
    config.set_trytond(database=database, config_file=config_file)
    company = _company(data["company"])
    accounts = _chart(company)
    _fiscal_years(company)
    taxes = _taxes(data["taxes"], accounts)
    accounting = _accounting_categories(data["accounting_categories"], taxes, accounts)
    menu = _menu_categories(data["categories"])
    products = _products(data["products"], accounting, menu)
    point, methods = _sale_point(data["sale_point"], company, accounts, data["payment_methods"])
    users = _users(data["users"], company)
    return {
        "company": company.id,
        "sale_point": point.id,
        "payment_methods": {key: method.id for key, method in methods.items()},
        "products": products,
        "users": users,
    }


def main() -> None:
    """Seed the database named on the command line and print the ids as JSON."""
    config_file, database, data_file = sys.argv[1:4]
    data = json.loads(Path(data_file).read_text(encoding="utf-8"))
    print(json.dumps(seed(config_file, database, data)))


if __name__ == "__main__":
    main()

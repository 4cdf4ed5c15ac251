"""How Square computes an order's amounts, as its documentation describes it.

From developer.squareup.com/docs/orders-api (price adjustments, discounts, service charges):

* every adjustment is computed with bankers' rounding (half to even);
* a line's gross is its base price plus its modifiers, times its quantity;
* discounts come off in this sequence: item-level percentages, order-level percentages,
  item-level fixed amounts, order-level fixed amounts; an order-level fixed amount is spread over
  the line totals in proportion to what each contributes; a discount never takes a line below 0;
* service charges in the ``SUBTOTAL_PHASE`` come after the discounts and before the taxes (a
  percentage one is of the subtotal after discounts); a ``taxable`` one is taxed by the order
  scoped taxes and by those listed in its ``applied_taxes``; ``TOTAL_PHASE`` ones come after the
  taxes and are never taxed;
* taxes apply per line, on the line's amount after discounts: an ``ADDITIVE`` tax adds its
  percentage of it, an ``INCLUSIVE`` one is the part of it that is tax;
* tips come with the payments (their tenders' ``tip_money``) and are part of the total;
* the amount due is the total less what the tenders paid (a tender's amount includes its tip).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from .errors import SquareError

JSONDict = dict[str, Any]
HUNDRED = Decimal(100)


def bankers(value: Decimal) -> int:
    """``value`` rounded to a whole minor unit, half to even (as Square rounds)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def money(amount: int, currency: str) -> JSONDict:
    return {"amount": amount, "currency": currency}


def check_discounts(order: JSONDict, src: JSONDict) -> None:
    """Take the request's ad hoc discounts onto ``order``, refusing what Square refuses; fill
    each line's ``applied_discounts`` (ORDER scoped ones apply to every line)."""
    discounts = []
    uids = set()
    for k, raw in enumerate(src.get("discounts") or ()):
        where = f"order.discounts[{k}]"
        if raw.get("catalog_object_id"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double implements ad hoc discounts only.",
                field=f"{where}.catalog_object_id",
            )
        kind = raw.get("type")
        if kind == "FIXED_AMOUNT" and not raw.get("amount_money"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "A FIXED_AMOUNT discount needs `amount_money`.",
                field=f"{where}.amount_money",
            )
        if kind == "FIXED_PERCENTAGE" and not raw.get("percentage"):
            raise SquareError(
                400,
                "MISSING_REQUIRED_PARAMETER",
                "A FIXED_PERCENTAGE discount needs `percentage`.",
                field=f"{where}.percentage",
            )
        if kind not in ("FIXED_AMOUNT", "FIXED_PERCENTAGE"):
            raise SquareError(
                400,
                "INVALID_VALUE",
                "An ad hoc discount is FIXED_AMOUNT or FIXED_PERCENTAGE.",
                field=f"{where}.type",
            )
        uid = raw.get("uid") or f"discount-{k}"
        if uid in uids:
            raise SquareError(400, "INVALID_VALUE", f"Duplicate uid `{uid}`.", field=f"{where}.uid")
        uids.add(uid)
        discount = {key: value for key, value in raw.items() if key != "applied_money"}
        discount.update(uid=uid, scope=raw.get("scope", "ORDER"))
        discounts.append(discount)
    by_uid = {d["uid"]: d for d in discounts}
    for n, line in enumerate(order["line_items"]):
        applied = []
        for j, ref in enumerate(line.get("applied_discounts") or ()):
            if ref.get("discount_uid") not in by_uid:
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"No discount with uid `{ref.get('discount_uid')}`.",
                    field=f"order.line_items[{n}].applied_discounts[{j}].discount_uid",
                )
            applied.append(
                {
                    "uid": ref.get("uid") or f"{line['uid']}-{ref['discount_uid']}",
                    "discount_uid": ref["discount_uid"],
                }
            )
        named = {a["discount_uid"] for a in applied}
        applied += [
            {"uid": f"{line['uid']}-{d['uid']}", "discount_uid": d["uid"]}
            for d in discounts
            if d["scope"] == "ORDER" and d["uid"] not in named
        ]
        if applied:
            line["applied_discounts"] = applied
        else:
            line.pop("applied_discounts", None)
    if discounts:
        order["discounts"] = discounts


def check_service_charges(order: JSONDict, src: JSONDict) -> None:
    """Take the request's service charges onto ``order``, refusing what Square refuses."""
    taxes = {t["uid"] for t in order.get("taxes") or ()}
    charges = []
    for k, raw in enumerate(src.get("service_charges") or ()):
        where = f"order.service_charges[{k}]"
        if raw.get("catalog_object_id"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double implements ad hoc service charges only.",
                field=f"{where}.catalog_object_id",
            )
        if bool(raw.get("percentage")) == bool(raw.get("amount_money")):
            raise SquareError(
                400,
                "INVALID_VALUE",
                "Exactly one of `percentage` or `amount_money` should be set.",
                field=where,
            )
        if not raw.get("name"):
            raise SquareError(
                400, "MISSING_REQUIRED_PARAMETER", "`name` is required.", field=f"{where}.name"
            )
        phase = raw.get("calculation_phase")
        if phase not in ("SUBTOTAL_PHASE", "TOTAL_PHASE"):
            raise SquareError(
                400,
                "BAD_REQUEST",
                "The Square double implements the SUBTOTAL_PHASE and the TOTAL_PHASE.",
                field=f"{where}.calculation_phase",
            )
        if phase == "TOTAL_PHASE" and raw.get("taxable"):
            raise SquareError(
                400,
                "INVALID_VALUE",
                "Service charges calculated in the TOTAL_PHASE cannot be taxable.",
                field=f"{where}.taxable",
            )
        for j, ref in enumerate(raw.get("applied_taxes") or ()):
            if ref.get("tax_uid") not in taxes:
                raise SquareError(
                    400,
                    "INVALID_VALUE",
                    f"No tax with uid `{ref.get('tax_uid')}`.",
                    field=f"{where}.applied_taxes[{j}].tax_uid",
                )
        charge = {
            key: value
            for key, value in raw.items()
            if key not in ("applied_money", "total_money", "total_tax_money")
        }
        charge.update(uid=raw.get("uid") or f"service-charge-{k}", type="CUSTOM")
        charges.append(charge)
    if charges:
        order["service_charges"] = charges


def _spread(amount: int, weights: list[int]) -> list[int]:
    """``amount`` over ``weights`` in proportion, rounded half to even; the last nonzero weight
    takes what rounding leaves, so the shares add up."""
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    shares = [bankers(Decimal(amount) * w / total) for w in weights]
    last = max(i for i, w in enumerate(weights) if w > 0)
    shares[last] += amount - sum(shares)
    return shares


def price_order(order: JSONDict, currency: str) -> None:
    """Compute every amount of ``order`` in place, as Square does (see the module docstring)."""
    lines = order["line_items"]
    discounts = {d["uid"]: d for d in order.get("discounts") or ()}
    taxes = {t["uid"]: t for t in order.get("taxes") or ()}
    order_taxes = [t for t in taxes.values() if t.get("scope") == "ORDER"]
    gross: list[int] = []
    for line in lines:
        qty = Decimal(line["quantity"])
        mods = 0
        for mod in line.get("modifiers") or ():
            mod_total = mod["base_price_money"]["amount"] * int(mod["quantity"])
            mod["total_price_money"] = money(mod_total, currency)
            mods += mod_total
        base = line["base_price_money"]["amount"]
        line["variation_total_price_money"] = money(bankers(base * qty), currency)
        gross.append(bankers((base + mods) * qty))
    # Discounts, in Square's sequence; applied[line][discount uid] = amount taken off.
    applied: list[dict[str, int]] = [{} for _ in lines]
    left = list(gross)

    def take(n: int, uid: str, amount: int) -> None:
        amount = min(amount, left[n])
        applied[n][uid] = applied[n].get(uid, 0) + amount
        left[n] -= amount

    def refs(uid: str) -> list[int]:
        return [
            n
            for n, line in enumerate(lines)
            if any(a["discount_uid"] == uid for a in line.get("applied_discounts") or ())
        ]

    for scope, kind in (
        ("LINE_ITEM", "FIXED_PERCENTAGE"),
        ("ORDER", "FIXED_PERCENTAGE"),
        ("LINE_ITEM", "FIXED_AMOUNT"),
        ("ORDER", "FIXED_AMOUNT"),
    ):
        for uid, discount in discounts.items():
            if discount["scope"] != scope or discount["type"] != kind:
                continue
            targets = refs(uid)
            if kind == "FIXED_PERCENTAGE":
                pct = Decimal(discount["percentage"]) / HUNDRED
                for n in targets:
                    take(n, uid, bankers(gross[n] * pct))
            elif scope == "LINE_ITEM":
                for n in targets:
                    take(n, uid, discount["amount_money"]["amount"])
            else:
                weights = [left[n] for n in targets]
                for n, share in zip(
                    targets, _spread(discount["amount_money"]["amount"], weights), strict=True
                ):
                    take(n, uid, share)
    nets = left
    subtotal = sum(nets)
    charges = order.get("service_charges") or []
    for charge in charges:
        if charge["calculation_phase"] == "SUBTOTAL_PHASE":
            charge["_amount"] = _charge_amount(charge, subtotal)
    # Taxes on lines and on taxable subtotal-phase charges.
    tax_total = additive_total = 0
    tax_applied: dict[str, int] = {}
    for n, line in enumerate(lines):
        line_taxes = [
            taxes[a["tax_uid"]] for a in line.get("applied_taxes") or () if a["tax_uid"] in taxes
        ]
        line_taxes += [t for t in order_taxes if t not in line_taxes]
        line_tax, line_additive, applied_out = _taxed(nets[n], line_taxes, line["uid"], currency)
        for ref in applied_out:
            tax_applied[ref["tax_uid"]] = (
                tax_applied.get(ref["tax_uid"], 0) + ref["applied_money"]["amount"]
            )
        if applied_out:
            line["applied_taxes"] = applied_out
        line_discount = sum(applied[n].values())
        for ref in line.get("applied_discounts") or ():
            ref["applied_money"] = money(applied[n].get(ref["discount_uid"], 0), currency)
        line["gross_sales_money"] = money(gross[n], currency)
        line["total_discount_money"] = money(line_discount, currency)
        line["total_tax_money"] = money(line_tax, currency)
        line["total_money"] = money(nets[n] + line_additive, currency)
        tax_total += line_tax
        additive_total += line_additive
    charge_total = 0
    for charge in charges:
        if charge["calculation_phase"] != "SUBTOTAL_PHASE":
            continue
        amount = charge.pop("_amount")
        charge_taxes = []
        if charge.get("taxable"):
            charge_taxes = [taxes[a["tax_uid"]] for a in charge.get("applied_taxes") or ()]
            charge_taxes += [t for t in order_taxes if t not in charge_taxes]
        c_tax, c_additive, applied_out = _taxed(amount, charge_taxes, charge["uid"], currency)
        for ref in applied_out:
            tax_applied[ref["tax_uid"]] = (
                tax_applied.get(ref["tax_uid"], 0) + ref["applied_money"]["amount"]
            )
        if applied_out:
            charge["applied_taxes"] = applied_out
        charge["applied_money"] = money(amount, currency)
        charge["total_tax_money"] = money(c_tax, currency)
        charge["total_money"] = money(amount + c_additive, currency)
        charge_total += amount
        tax_total += c_tax
        additive_total += c_additive
    before_total_phase = subtotal + charge_total + additive_total
    for charge in charges:
        if charge["calculation_phase"] == "TOTAL_PHASE":
            amount = _charge_amount(charge, before_total_phase)
            charge["applied_money"] = money(amount, currency)
            charge["total_tax_money"] = money(0, currency)
            charge["total_money"] = money(amount, currency)
            charge_total += amount
    for uid, tax in taxes.items():
        tax["applied_money"] = money(tax_applied.get(uid, 0), currency)
    for uid, discount in discounts.items():
        discount["applied_money"] = money(sum(a.get(uid, 0) for a in applied), currency)
    tenders = order.get("tenders") or ()
    tips = sum((t.get("tip_money") or {}).get("amount", 0) for t in tenders)
    paid = sum(t["amount_money"]["amount"] for t in tenders)
    discount_total = sum(sum(a.values()) for a in applied)
    total = subtotal + charge_total + additive_total + tips
    order["total_money"] = money(total, currency)
    order["total_tax_money"] = money(tax_total, currency)
    order["total_discount_money"] = money(discount_total, currency)
    order["total_tip_money"] = money(tips, currency)
    order["total_service_charge_money"] = money(charge_total, currency)
    order["net_amounts"] = {
        "total_money": money(total, currency),
        "tax_money": money(tax_total, currency),
        "discount_money": money(discount_total, currency),
        "tip_money": money(tips, currency),
        "service_charge_money": money(charge_total, currency),
    }
    order["net_amount_due_money"] = money(max(total - paid, 0), currency)


def _charge_amount(charge: JSONDict, base: int) -> int:
    if charge.get("amount_money"):
        return int(charge["amount_money"]["amount"])
    return bankers(Decimal(base) * Decimal(charge["percentage"]) / HUNDRED)


def _taxed(
    amount: int, taxes: list[JSONDict], owner_uid: str, currency: str
) -> tuple[int, int, list[JSONDict]]:
    """The tax on ``amount`` (all of it, and the additive part) and its applied-tax records."""
    total = additive = 0
    applied = []
    for tax in taxes:
        pct = Decimal(tax["percentage"]) / HUNDRED
        if tax["type"] == "INCLUSIVE":
            part = bankers(amount - amount / (1 + pct))
        else:
            part = bankers(amount * pct)
            additive += part
        total += part
        applied.append(
            {
                "uid": f"{owner_uid}-{tax['uid']}"[:60],
                "tax_uid": tax["uid"],
                "applied_money": money(part, currency),
            }
        )
    return total, additive, applied

"""The domain's codes as the admin page names them: record and bag events, history causes,
parcel statuses, exception kinds and audit actions, in English (gateway/web/i18n.py has the
Chinese of each English text; a test checks that none is missing).
"""

from __future__ import annotations

import re

from flask import Flask

from gateway.domain import lifecycle
from gateway.services import exceptions
from gateway.web import i18n
from gateway.web.admin import bag_actions

# The handheld's journal records (protocol/wire_schema.py) and the scans, on the timeline.
RECORD_NAMES = {
    "bag_open": "Bag opened",
    "parcel": "Parcel added",
    "parcel_remove": "Parcel removed",
    "weigh": "Weighed",
    "bag_close": "Bag closed",
    "signin": "Driver signed in",
    "pickup": "Pickup scan",
    "pickup_refuse": "Pickup refused",
    "refuse": "Pickup refused",
    "handover": "Handover",
    "arrive": "Arrival weighing",
}
# Bag events (domain.lifecycle), as the status history's causes begin with them.
EVENT_NAMES = {
    lifecycle.ROUTE: "Routing",
    lifecycle.LABEL_ASSIGNED: "Label assigned",
    lifecycle.PICKUP_SCAN: "Pickup scan",
    lifecycle.PICKUP_REFUSED: "Pickup refused",
    lifecycle.RETRY_PICKUP: "Retry pickup",
    lifecycle.ARRIVE: "Arrived",
    lifecycle.RECEIVE: "Received",
    lifecycle.RECEIVE_WITH_EXCEPTION: "Received with exception",
    lifecycle.RECEIPT_FAIL: "Receipt failed",
    lifecycle.CANCEL: "Cancel requested",
    lifecycle.CANCEL_CONFIRMED: "Cancel confirmed",
    lifecycle.CANCEL_REJECTED: "Cancel rejected",
    lifecycle.CLOSE: "Close requested",
    lifecycle.CLOSE_CONFIRMED: "Close confirmed",
    lifecycle.CLOSE_REJECTED: "Close rejected",
}
# The parcel statuses of the platform's import (domain.bag_rules.PARCEL_STATUSES).
PARCEL_STATUS_NAMES = {
    "pending": "pending (not ready to ship)",
    "rts": "ready to ship (RTS)",
    "cancelled": "cancelled",
    "received": "received at the hub",
}
# The courier's refusal reasons (protocol/wire.py REFUSE_REASONS; docs/domain.md).
REFUSE_REASON_NAMES = {
    "no_goods": "no goods",
    "packaging": "packaging not compliant",
    "over_limit": "bag overweight / overlong",
}
# The exceptions queue's kinds (gateway.services.exceptions).
KIND_NAMES = {
    exceptions.DISAGREEMENT: "Disagreement",
    exceptions.LATE_PICKUP: "Late pickup",
    lifecycle.RECEIVED_EXCEPTION: "Received with exception",
    lifecycle.RECEIPT_FAILED: "Receipt failed",
    exceptions.IN_TRANSIT: "In transit too long",
    exceptions.CLOCK_OFF: "Handheld clock off",
    exceptions.BACKLOG: "Handheld backlog",
    exceptions.CONFIG_BEHIND: "Handheld config behind",
}
# The audit log's actions (gateway.web.admin.bag_actions, setup_pages, exception_queue, devices).
ACTION_NAMES = {
    "cancel_bag": "Cancel bag",
    lifecycle.RECEIPT_FAIL: "Mark receipt failed",
    lifecycle.RECEIVE: "Retry receipt",
    lifecycle.RETRY_PICKUP: "Retry pickup",
    "hub_receipt": "Manual hub receipt",
    "print_labels": "Print labels",
    "resolve_exception": "Resolve",
    "add_account": "Add account",
    "add_store": "Add store",
    "add_address": "Add address",
    "add_courier": "Add courier",
    "add_user": "Create user",
    "set_role": "Change role",
    "provision_device": "Provision a device",
    "device_language": "Change screen language",
}
# Causes the gateway writes with a value inside (gateway/ingest/registry.py): English pattern,
# the English text with {placeholders}. Fixed causes are plain texts of i18n.ZH.
CAUSE_PATTERNS = (
    (re.compile(r"scanned by driver (?P<drv>.+)"), "scanned by driver {drv}"),
    (re.compile(r"refused by driver (?P<drv>.+): (?P<why>\w+)"), "refused by driver {drv}: {why}"),
    (
        re.compile(
            r"arrival (?P<g>\d+) g vs bagging (?P<b>\d+) g: difference (?P<d>[+-]\d+) g, "
            r"allowance (?P<a>\d+) g"
        ),
        "arrival {g} g vs bagging {b} g: difference {d} g, allowance {a} g",
    ),
    (re.compile(r"arrival (?P<g>\d+) g, no bagging weight"), "arrival {g} g, no bagging weight"),
)


def record_name(kind: str) -> str:
    return i18n.gettext(RECORD_NAMES.get(kind, kind))


def parcel_status(code: str | None) -> str:
    return i18n.gettext(PARCEL_STATUS_NAMES.get(code or "", code or ""))


def cause(text: str | None) -> str:
    """A status history cause, "event: what happened", in the reader's language. Text a person
    typed (a cancel reason) stays as typed."""
    if not text:
        return ""
    event, sep, rest = text.partition(": ")
    if not sep or event not in EVENT_NAMES:
        return _cause_text(text)
    return f"{i18n.gettext(EVENT_NAMES[event])}: {_cause_text(rest)}"


def _cause_text(text: str) -> str:
    for pattern, english in CAUSE_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            values = found.groupdict()
            if "why" in values:
                values["why"] = i18n.gettext(REFUSE_REASON_NAMES.get(values["why"], values["why"]))
            return i18n.gettext(english).format(**values)
    return i18n.gettext(text)


def english_texts() -> set[str]:
    """Every English text of this module and of the queue's advice (a test checks each has
    its Chinese)."""
    texts = {english for _pattern, english in CAUSE_PATTERNS}
    for names in (RECORD_NAMES, EVENT_NAMES, PARCEL_STATUS_NAMES, REFUSE_REASON_NAMES,
                  KIND_NAMES, ACTION_NAMES, exceptions.ADVICE, bag_actions.EVENT_BUTTONS):  # fmt: skip
        texts.update(names.values())
    codes = exceptions.ADVICE_CODES
    return texts | {exceptions.advice_for(c, handover) for c in codes for handover in (False, True)}


def init_app(app: Flask) -> None:
    g = app.jinja_env.globals
    g["record_name"] = record_name
    g["parcel_status"] = parcel_status
    g["cause_label"] = cause
    g["kind_names"] = KIND_NAMES
    g["action_names"] = ACTION_NAMES
    g["event_names"] = EVENT_NAMES

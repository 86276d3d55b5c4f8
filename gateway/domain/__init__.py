"""The gateway's domain rules as a pure library: no database, no Flask (docs/domain.md).

One module per rule: lifecycle (bag statuses and transitions), deadlines (pickup cut-offs and
service windows), coverage (the manual's tables, Milkrun eligibility), online_time, arrival
(weight check at the hub), bag_rules (re-check of a device's add), receipts (handover receipt,
signatures, PDF) and labels (bag label PDFs). Submodules are imported by name; nothing is
re-exported here, so importing the lifecycle does not load reportlab.
"""

"""The rollout page (issue 19, docs/ota.md): firmware releases, each handheld's update state,
and for admins the upload of a signed release and its rollout to one handheld, an account's or
all. The rules are gateway.services.firmware's; the feed (gateway/ingest/firmware_feed.py)
does the rest over MQTT."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from gateway import db
from gateway.errors import Refused, bad_field
from gateway.models import Account
from gateway.services import audit, firmware
from gateway.web import i18n
from gateway.web.admin import acting
from gateway.web.auth import login_required

bp = Blueprint("releases_page", __name__)


@bp.get("/releases")
@login_required()
def releases():
    dbs = db.session()
    return render_template(
        "releases.html",
        releases=firmware.releases(dbs),
        updates=firmware.update_rows(dbs),
        accounts=list(dbs.scalars(select(Account).order_by(Account.name).limit(500))),
    )


@bp.post("/releases")
@login_required("admin")
def upload():
    """A release file of tools/release build."""
    file = request.files.get("release")
    try:
        if file is None:
            raise bad_field("release", "choose a release file")
        release = firmware.upload(db.session(), file.read(), acting.actor().username)
    except Refused as err:
        return acting.refused(err, "releases_page.releases")
    audit.record(db.session(), acting.actor(), "upload_release", f"release {release.version}",
                 None, {"sha256": release.sha256, "size": release.size})  # fmt: skip
    return acting.done(i18n.gettext("Saved."), "releases_page.releases")


@bp.post("/releases/<version>/rollout")
@login_required("admin")
def rollout(version: str):
    """To the handhelds named (separated by spaces or commas), an account's, or all."""
    target = request.form.get("target", "")
    named = request.form.get("devices", "").replace(",", " ").split()
    try:
        if target == "devices" and named:
            ids = firmware.rollout(db.session(), version, device_ids=named)
        elif target == "account" and request.form.get("account_id", "").isdigit():
            account_id = int(request.form["account_id"])
            ids = firmware.rollout(db.session(), version, account_id=account_id)
        elif target == "all":
            ids = firmware.rollout(db.session(), version)
        else:
            raise bad_field("target", "name the handhelds, choose an account, or all")
    except Refused as err:
        return acting.refused(err, "releases_page.releases")
    audit.record(db.session(), acting.actor(), "rollout_release", f"release {version}", None,
                 {"devices": ids})  # fmt: skip
    return acting.done(i18n.gettext("Saved."), "releases_page.releases")

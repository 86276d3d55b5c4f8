"""The admin pages (HTML)."""

from flask import Blueprint, render_template
from sqlalchemy import select

from gateway import db
from gateway.models import Bag

bp = Blueprint("admin", __name__)


@bp.get("/")
def bags():
    rows = db.session().scalars(select(Bag).order_by(Bag.id.desc()).limit(100)).all()
    return render_template("bags.html", bags=rows)

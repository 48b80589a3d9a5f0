"""Superuser pages: create organizations."""

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..auth import require_principal
from ..errors import Forbidden
from ..extensions import db
from ..models import ORG_ID_PATTERN, Organization, new_org_id
from .common import valid_zone

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _superuser():
    principal = require_principal()
    if not (principal.user and principal.user.is_superuser):
        raise Forbidden("Only superusers can do this", error_code="SUPERUSER_REQUIRED")
    return principal.user


@bp.route("/orgs/new", methods=["GET", "POST"])
def new_org():
    """Create an organization (id optional, Cliniko key optional)."""
    _superuser()
    form = {k: request.form.get(k, "").strip() for k in ("id", "name", "time_zone")}
    if request.method == "GET":
        return render_template("admin/new_org.html", form=form, errors={})
    errors = {}
    org_id = form["id"] or new_org_id()
    if not ORG_ID_PATTERN.match(org_id):
        errors["id"] = "Use up to 64 letters, digits, '-' or '_'."
    elif db.session.get(Organization, org_id):
        errors["id"] = "An organization with this id exists."
    if not form["name"] or len(form["name"]) > 200:
        errors["name"] = "Give a name (up to 200 characters)."
    tz = form["time_zone"] or "UTC"
    if tz != "UTC" and not valid_zone(tz):
        errors["time_zone"] = "Use an IANA name such as Australia/Sydney."
    key = request.form.get("api_key", "").strip()
    if any(c.isspace() for c in key):
        errors["api_key"] = "The key has no spaces."
    if errors:
        return render_template("admin/new_org.html", form=form, errors=errors), 422
    org = Organization(id=org_id, name=form["name"], time_zone=tz)
    if key:
        org.set_api_key(key)
    db.session.add(org)
    db.session.commit()
    flash(f"Organization {org.name} ({org.id}) created.", "info")
    return redirect(url_for("orgs.show", org_id=org.id))

"""Superuser pages: create organizations."""

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..auth import require_principal
from ..errors import Forbidden
from ..extensions import db
from ..models import Organization, new_org_id
from .forms import NewOrgForm

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
    form = NewOrgForm()
    if request.method == "GET":
        return render_template("admin/new_org.html", form=form)
    if not form.validate():
        return render_template("admin/new_org.html", form=form), 422
    org_id, key, tz = form.id.data or new_org_id(), form.api_key.data, form.time_zone.data
    org = Organization(id=org_id, name=form.name.data, time_zone=tz or None)
    if key:
        org.set_api_key(key)
    db.session.add(org)
    db.session.commit()
    flash(f"Organization {org.name} ({org.id}) created.", "info")
    return redirect(url_for("orgs.show", org_id=org.id))

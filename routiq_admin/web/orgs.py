"""Organizations list."""

from flask import Blueprint, render_template

from ..auth import require_principal, visible_organizations

bp = Blueprint("orgs", __name__)


@bp.get("/")
def index():
    """List every organization the signed-in person looks after."""
    principal = require_principal()
    return render_template("orgs/index.html", organizations=visible_organizations(), principal=principal)

"""Organizations visible to the caller."""

from flask import Blueprint, jsonify

from ..auth import require_org, visible_organizations
from .serializers import org_json

bp = Blueprint("api_orgs", __name__, url_prefix="/api/v1/organizations")


@bp.get("")
def list_organizations():
    """List the organizations the caller may see."""
    return jsonify({"organizations": [org_json(o) for o in visible_organizations()]})


@bp.get("/<org_id>")
def get_organization(org_id):
    """Show one organization."""
    return jsonify(org_json(require_org(org_id)))

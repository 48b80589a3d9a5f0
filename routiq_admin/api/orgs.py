"""Organizations visible to the caller."""

from flask import Blueprint, jsonify

from ..auth import require_org, visible_organizations
from ..timefmt import iso

bp = Blueprint("api_orgs", __name__, url_prefix="/api/v1/organizations")


def org_json(org):
    """Return an organization as JSON (never the key itself)."""
    return {
        "organization_id": org.id,
        "name": org.name,
        "api_region": org.cliniko_shard,
        "cliniko_api_key": org.masked_key,
        "sync_enabled": org.sync_enabled,
        "created_at": iso(org.created_at),
    }


@bp.get("")
def list_organizations():
    """List the organizations the caller may see."""
    return jsonify({"organizations": [org_json(o) for o in visible_organizations()]})


@bp.get("/<org_id>")
def get_organization(org_id):
    """Show one organization."""
    return jsonify(org_json(require_org(org_id)))

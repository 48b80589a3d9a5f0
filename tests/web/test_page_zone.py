"""One zone per page (issue 15 item 10): fragments a page refreshes keep the zone it was drawn in,
also when a first sync brings Cliniko's business zone while the page is open."""

import re

from routiq_admin.extensions import db
from routiq_admin.models import Business
from tests.factories import login, make_org, make_run, make_user

HX = {"HX-Request": "true"}


def test_fragments_keep_the_zone_of_the_page_that_asked(client):
    org = make_org(time_zone=None)  # automatic: Cliniko's business zone once a sync has brought it
    make_user(org=org, role="viewer")
    make_run(org.id, "completed")
    login(client)
    page = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert re.search(r'hx-headers=\'\{"X-CSRFToken": "[^"]+", "X-Page-Zone": "UTC"\}\'', page)
    # the first sync stores the business and its zone while the page is open
    db.session.add(Business(organization_id=org.id, cliniko_id="1", time_zone_identifier="Australia/Sydney"))
    db.session.commit()
    pinned = client.get(f"/orgs/{org.id}/syncs", headers={**HX, "X-Page-Zone": "UTC"}).get_data(as_text=True)
    fresh = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    assert "UTC" in pinned and not re.search(r"AE[DS]T", pinned)
    assert re.search(r"AE[DS]T", fresh)  # a page drawn now (or a reload) uses the business zone
    reloaded = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert '"X-Page-Zone": "Australia/Sydney"' in reloaded
    # a header that names no zone is ignored
    odd = client.get(f"/orgs/{org.id}/syncs", headers={**HX, "X-Page-Zone": "Mars/Base"}).get_data(
        as_text=True
    )
    assert re.search(r"AE[DS]T", odd)

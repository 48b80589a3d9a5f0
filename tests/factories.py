"""Tiny factories for tests."""

from routiq_admin.extensions import db
from routiq_admin.models import ApiToken, Membership, Organization, User


def make_org(org_id="org_test", name="Test Clinic", api_key="test-key-au1", **fields):
    org = Organization(id=org_id, name=name, **fields)
    if api_key:
        org.set_api_key(api_key)
    db.session.add(org)
    db.session.commit()
    return org


def make_user(email="staff@example.com", password="pw-123456", *, org=None, role=None, superuser=False):
    user = User(email=email, is_superuser=superuser)
    user.set_password(password)
    db.session.add(user)
    if org is not None:
        db.session.add(Membership(user=user, organization_id=org.id, role=role or "viewer"))
    db.session.commit()
    return user


def make_token(org=None, *, all_orgs=False, name="test token"):
    row, clear = ApiToken.issue(
        name=name, organization_id=org.id if org else None, all_organizations=all_orgs
    )
    db.session.add(row)
    db.session.commit()
    return row, clear


def login(client, email="staff@example.com", password="pw-123456"):
    return client.post("/login", data={"email": email, "password": password})

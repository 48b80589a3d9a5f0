"""Who may read the synced data: token scopes (403 naming the missing one), the isolation matrix
of the data endpoints for every kind of credential, sessions, the CLI's --scope and the
settings page's checkbox."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text

from routiq_admin.extensions import db
from routiq_admin.models import PATIENTS_READ, SCOPES, SYNC_SCOPE, ApiToken, Patient, hash_token
from tests.api.test_access import ALL as SYNC_ENDPOINTS
from tests.api.test_access import url
from tests.clerk_issuer import serve_issuer
from tests.factories import login, make_org, make_token, make_user

DATA_ENDPOINTS = [
    ("GET", "/api/v1/organizations/{org}/summary"),
    ("GET", "/api/v1/organizations/{org}/patients"),
    ("GET", "/api/v1/organizations/{org}/appointments"),
]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@dataclass
class CredentialKind:
    """A kind of credential the matrix runs with: headers for one that reaches only org A with
    patients:read, and (if the kind has one) headers for one that reaches every organization."""

    name: str
    org_a: Callable
    all_orgs: Callable | None = None


# Each kind gets (orgs, issuer); a Clerk admin of A reads patients through the role map below.
CREDENTIAL_KINDS = [
    CredentialKind(
        "api_token",
        lambda orgs, issuer: bearer(orgs.token_a_read),
        lambda orgs, issuer: bearer(orgs.token_all_read),
    ),
    CredentialKind("clerk", lambda orgs, issuer: bearer(issuer.mint("org_a", "admin"))),
]
issuer = pytest.fixture(serve_issuer, name="issuer")


@pytest.fixture
def app(make_app, sim_server, issuer):
    """The app with Clerk tokens on: Clerk admins may read patients, members may only sync."""
    settings = {**issuer.settings(), "CLERK_ROLE_MAP": "admin=operator+patients:read,member=operator"}
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url, **settings)
    with app.app_context():
        yield app


def details(response):
    return response.get_json()["details"]


@pytest.fixture
def b_patient(orgs):
    """A patient of clinic B that nobody from clinic A may see."""
    db.session.add(Patient(organization_id="org_b", cliniko_id="777", first_name="Bee", last_name="Only"))
    db.session.commit()


@pytest.mark.parametrize("kind", CREDENTIAL_KINDS, ids=lambda k: k.name)
def test_data_isolation_matrix(api, orgs, b_patient, issuer, kind):
    headers = kind.org_a(orgs, issuer)
    for method, template in DATA_ENDPOINTS:
        own = api.open(method, url(template, "org_a"), headers=headers)
        assert own.status_code == 200, (template, own.get_json())
        assert "Bee" not in own.get_data(as_text=True) and "777" not in own.get_data(as_text=True)
        for org, header in (("org_b", None), ("org_a", "org_b"), ("org_nope", None)):
            response = api.open(method, url(template, org), headers=headers, org=header)
            assert response.status_code == 403, (template, org, header)
            assert details(response)["error_type"] == "forbidden"
    found = api.get("/api/v1/organizations/org_a/patients?q=bee&archived=true", headers=headers)
    assert found.get_json()["data"] == []


@pytest.mark.parametrize("kind", [k for k in CREDENTIAL_KINDS if k.all_orgs], ids=lambda k: k.name)
def test_all_organizations_credentials_read_every_organization(api, orgs, b_patient, issuer, kind):
    headers = kind.all_orgs(orgs, issuer)
    for method, template in DATA_ENDPOINTS:
        for org in ("org_a", "org_b"):
            assert api.open(method, url(template, org), headers=headers).status_code == 200, (template, org)
        response = api.open(method, url(template, "org_nope"), headers=headers)
        assert response.status_code == 404 and details(response)["error_type"] == "not_found"
    body = api.get("/api/v1/organizations/org_b/patients", headers=headers).get_json()
    assert [p["cliniko_id"] for p in body["data"]] == ["777"]


@pytest.mark.parametrize("token_name", ["token_a", "token_all"])
def test_sync_tokens_cannot_read_patients_and_are_told_which_scope(api, orgs, token_name):
    token = getattr(orgs, token_name)
    for method, template in DATA_ENDPOINTS:
        for org in ("org_a", "org_nope"):  # the scope answers before the organization's existence
            response = api.open(method, url(template, org), token=token)
            assert response.status_code == 403, template
            assert details(response)["error_code"] == "SCOPE_REQUIRED"
            assert details(response)["scope"] == PATIENTS_READ
            assert "patients:read" in details(response)["message"]


def test_a_clerk_role_without_the_scope_is_told_which_scope(api, orgs, issuer):
    headers = bearer(issuer.mint("org_a", "member"))
    for method, template in DATA_ENDPOINTS:
        response = api.open(method, url(template, "org_a"), headers=headers)
        assert response.status_code == 403 and details(response)["scope"] == PATIENTS_READ, template
    assert api.post("/api/v1/sync/start/org_a", headers=headers).status_code == 200


def test_a_read_only_token_cannot_sync(api, orgs):
    _, token = make_token(orgs.a, name="read only", scopes=(PATIENTS_READ,))
    for method, template in SYNC_ENDPOINTS:
        if template.startswith("/api/v1/organizations"):
            continue
        response = api.open(method, url(template, "org_a"), token=token)
        assert response.status_code == 403, template
        assert (
            details(response)["error_code"] == "SCOPE_REQUIRED" and details(response)["scope"] == SYNC_SCOPE
        )
    assert api.get("/api/v1/organizations/org_a/patients", token=token).status_code == 200
    # Organizations (no patient data) answer every scope.
    assert api.get("/api/v1/organizations", token=token).status_code == 200
    assert api.get("/api/v1/organizations/org_a", token=token).status_code == 200


def test_no_or_bad_credentials_are_401_before_any_scope(api, orgs):
    for method, template in DATA_ENDPOINTS:
        assert api.open(method, url(template, "org_a")).status_code == 401
        response = api.open(method, url(template, "org_a"), headers=bearer("rtq_wrong"))
        assert response.status_code == 401 and details(response)["error_type"] == "unauthorized"


def test_a_token_made_before_scopes_keeps_sync_only(api, orgs):
    clear = "rtq_made-before-scopes"
    db.session.execute(
        text(
            "INSERT INTO api_tokens (name, token_hash, token_prefix, organization_id, all_organizations,"
            " created_at) VALUES ('old', :hash, 'rtq_made', 'org_a', :no, CURRENT_TIMESTAMP)"
        ),
        {"hash": hash_token(clear), "no": False},
    )
    db.session.commit()
    token = db.session.execute(select(ApiToken).filter_by(name="old")).scalar_one()
    assert token.scopes == "sync" and token.scope_set == {SYNC_SCOPE}
    assert api.get("/api/v1/sync/history/org_a", token=clear).status_code == 200
    assert api.get("/api/v1/organizations/org_a/patients", token=clear).status_code == 403


def test_issue_refuses_unknown_or_no_scopes(app):
    org = make_org("org_x")
    for scopes in ((), ("patients:write",), ("sync", "admin")):
        with pytest.raises(ValueError):
            ApiToken.issue(organization_id=org.id, scopes=scopes)
    row, _ = ApiToken.issue(organization_id=org.id, scopes=(PATIENTS_READ, SYNC_SCOPE, PATIENTS_READ))
    assert row.scopes == "sync patients:read"


def test_people_have_every_scope_within_their_organizations(api, orgs):
    make_user("viewer@example.com", org=orgs.a, role="viewer")
    login(api.client, "viewer@example.com")
    for method, template in DATA_ENDPOINTS:
        assert api.open(method, url(template, "org_a")).status_code == 200
        response = api.open(method, url(template, "org_b"))
        assert response.status_code == 403 and details(response)["error_code"] == "ORG_FORBIDDEN"


def test_a_cors_preflight_needs_no_credentials(make_app, sim_server):
    app = make_app(CORS_ORIGINS=("https://app.example.com",), CLINIKO_BASE_URL=sim_server.base_url)
    with app.app_context():
        make_org("org_a")
        response = app.test_client().options(
            "/api/v1/organizations/org_a/patients",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_cli_creates_tokens_with_scopes(app):
    make_org("org_cli")
    runner = app.test_cli_runner()

    def create(*args):
        result = runner.invoke(args=["tokens", "create", "--org", "org_cli", *args])
        assert result.exit_code == 0, result.output
        clear = result.output.strip().splitlines()[-1]
        return result.output, db.session.execute(
            select(ApiToken).filter_by(token_hash=hash_token(clear))
        ).scalar_one()

    output, token = create()
    assert token.scope_set == {SYNC_SCOPE} and "scopes sync" in output
    _, token = create("--scope", "patients:read")
    assert token.scope_set == {PATIENTS_READ}
    _, token = create("--scope", "patients:read", "--scope", "sync")
    assert token.scope_set == set(SCOPES)
    bad = runner.invoke(args=["tokens", "create", "--org", "org_cli", "--scope", "patients:write"])
    assert bad.exit_code != 0 and "patients:write" in bad.output


def test_settings_page_checkbox_and_scopes_in_the_token_list(client):
    org = make_org("org_a", api_key=None)
    other = make_org("org_b", api_key=None)
    make_user("admin@example.com", org=org, role="admin")
    make_user("other-admin@example.com", org=other, role="admin")
    make_user("operator@example.com", org=org, role="operator")
    login(client, "admin@example.com")
    client.post("/orgs/org_a/settings/tokens", data={"name": "plain"})
    client.post("/orgs/org_a/settings/tokens", data={"name": "reader", "patients_read": "1"})
    tokens = {t.name: t for t in db.session.execute(select(ApiToken)).scalars()}
    assert tokens["plain"].scope_set == {SYNC_SCOPE}
    assert tokens["reader"].scope_set == {SYNC_SCOPE, PATIENTS_READ}
    page = client.get("/orgs/org_a/settings").get_data(as_text=True)
    assert 'id="token-patients-read"' in page and 'name="patients_read"' in page
    row = page.split('<td data-label="Name">reader</td>')[1].split("</tr>")[0]
    assert '<code class="scope">patients:read</code>' in row and '<code class="scope">sync</code>' in row
    plain = page.split('<td data-label="Name">plain</td>')[1].split("</tr>")[0]
    assert "patients:read" not in plain
    # Another organization's admin and an operator cannot mint a reading token here.
    for email in ("other-admin@example.com", "operator@example.com"):
        client.post("/logout")
        login(client, email)
        response = client.post("/orgs/org_a/settings/tokens", data={"name": "sneaky", "patients_read": "1"})
        assert response.status_code == 403, email
    assert db.session.execute(select(ApiToken).filter_by(name="sneaky")).scalar_one_or_none() is None

"""Clerk session tokens as bearer credentials: verification against a JWKS served on loopback,
the organization claim scoping them like an org-scoped API token, the role map, last seen."""

import logging
import time

import pytest

from routiq_admin import create_app
from routiq_admin.auth import current_principal
from routiq_admin.clerk import RoleGrant, parse_role_map
from routiq_admin.config import ConfigError
from routiq_admin.extensions import db
from routiq_admin.models import ClerkUser, Organization, SyncRun
from tests.api.conftest import CheckedClient
from tests.api.test_access import ALL, HEADER_ENDPOINTS, PATH_ENDPOINTS, RUN_ENDPOINTS, url
from tests.clerk_issuer import FRONT_END, serve_issuer
from tests.factories import login, make_org, make_run, make_user

issuer = pytest.fixture(serve_issuer, name="issuer")
STATUS = "/api/v1/cliniko/status/org_a"


@pytest.fixture
def app(make_app, sim_server, issuer):
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url, **issuer.settings())
    with app.app_context():
        yield app


@pytest.fixture
def api(app):
    return CheckedClient(app.test_client())


@pytest.fixture
def orgs(app):
    return make_org("org_a", "Clinic A", api_key="clerk-a-au1"), make_org(
        "org_b", "Clinic B", api_key="clerk-b-au1"
    )


def details(response):
    return response.get_json()["details"]


def test_a_valid_token_acts_as_an_operator_of_its_organization(api, orgs, issuer):
    token = issuer.mint("org_a", "admin")
    response = api.get(STATUS, token=token)
    assert response.status_code == 200, response.get_json()
    assert api.get("/api/v1/sync/scheduler/status", token=token).get_json()["organization_id"] == "org_a"
    started = api.post("/api/v1/sync/start/org_a", token=token)
    assert started.status_code == 200
    run = db.session.query(SyncRun).one()
    assert run.triggered_by_label == "clerk:user_2abc" and run.triggered_by_id is None
    names = api.get("/api/v1/organizations", token=token).get_json()["organizations"]
    assert [o["organization_id"] for o in names] == ["org_a"]
    assert issuer.fetches == 1  # the key set is cached


def test_v1_claims_org_id_and_org_role_are_the_fallback(api, orgs, issuer):
    token = issuer.mint(None, user="user_v1", v=1, org_id="org_a", org_role="org:member")
    assert api.get(STATUS, token=token).status_code == 200
    assert api.get("/api/v1/cliniko/status/org_b", token=token).status_code == 403
    assert db.session.query(ClerkUser).one().clerk_role == "member"


@pytest.mark.parametrize(
    "case, claims, why",
    [
        ("expired", {"exp": -60, "iat": -700, "nbf": -700}, "has expired"),
        ("not yet valid", {"nbf": 120}, "is not valid yet"),
        ("wrong issuer", {"iss": "https://other.clerk.accounts.dev"}, "comes from another issuer"),
        ("wrong azp", {"azp": "https://evil.example.com"}, "not authorized (azp)"),
        ("no azp", {"drop": ("azp",)}, "not authorized (azp)"),
        ("pending session", {"sts": "pending"}, "pending session"),
        ("no nbf", {"drop": ("nbf",)}, "has no nbf claim"),
        ("no sub", {"drop": ("sub",)}, "has no sub claim"),
        ("an audience we do not expect", {"aud": "https://api.other.example"}, "another audience"),
    ],
)
def test_bad_tokens_are_401_with_the_reason(api, orgs, issuer, case, claims, why):
    now = int(time.time())
    timed = {k: now + v for k, v in claims.items() if k in ("exp", "iat", "nbf")}
    token = issuer.mint("org_a", **{**claims, **timed})
    response = api.get(STATUS, token=token)
    assert response.status_code == 401, case
    assert details(response)["error_type"] == "unauthorized"
    assert details(response)["error_code"] == "CLERK_TOKEN_INVALID"
    assert why in details(response)["message"], details(response)
    assert db.session.query(ClerkUser).count() == 0


def test_nbf_has_a_small_leeway(api, orgs, issuer):
    assert api.get(STATUS, token=issuer.mint("org_a", nbf=int(time.time()) + 2)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_alg_none_and_hs256_with_the_public_key_are_refused(api, orgs, issuer, alg):
    response = api.get(STATUS, token=issuer.forge(alg, "org_a"))
    assert response.status_code == 401 and "RS256" in details(response)["message"]


def test_malformed_tokens_and_tokens_without_a_kid_are_refused_without_a_fetch(api, orgs, issuer):
    import jwt

    no_kid = jwt.encode(issuer.claims("org_a"), issuer.keys[issuer.kid], algorithm="RS256")
    for token, why in [("not.a.jwt", "is malformed"), (no_kid, "names no signing key")]:
        response = api.get(STATUS, token=token)
        assert response.status_code == 401 and why in details(response)["message"]
    assert issuer.fetches == 0


def test_a_forged_signature_with_a_published_kid_is_refused(api, orgs, issuer):
    rogue = issuer.add_key(publish=False)
    token = issuer.mint("org_a")
    header, payload, _ = token.split(".")
    forged = issuer.mint("org_a", kid=rogue).split(".")[2]
    response = api.get(STATUS, token=f"{header}.{payload}.{forged}")
    assert response.status_code == 401 and "bad signature" in details(response)["message"]


def test_unknown_kid_refetches_once_then_401(make_app, sim_server, issuer):
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url, **issuer.settings(CLERK_JWKS_COOLDOWN_SECONDS=0))
    with app.app_context():
        make_org("org_a", api_key="clerk-a-au1")
        api = CheckedClient(app.test_client())
        assert api.get(STATUS, token=issuer.mint("org_a")).status_code == 200
        assert issuer.fetches == 1
        stranger = issuer.add_key(publish=False)
        response = api.get(STATUS, token=issuer.mint("org_a", kid=stranger))
        assert response.status_code == 401 and "unknown key" in details(response)["message"]
        assert issuer.fetches == 2  # one refetch, then the answer


def test_refetches_for_unknown_kids_are_rate_bounded(api, orgs, issuer):
    # The default cooldown (30 s) counts from the first fetch: a burst of unknown kids costs no fetch.
    assert api.get(STATUS, token=issuer.mint("org_a")).status_code == 200
    strangers = [issuer.add_key(publish=False) for _ in range(3)]
    for kid in strangers * 3:
        assert api.get(STATUS, token=issuer.mint("org_a", kid=kid)).status_code == 401
    assert issuer.fetches == 1


def test_key_rotation_a_newly_published_kid_is_fetched_and_accepted(make_app, sim_server, issuer):
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url, **issuer.settings(CLERK_JWKS_COOLDOWN_SECONDS=0))
    with app.app_context():
        make_org("org_a", api_key="clerk-a-au1")
        api = CheckedClient(app.test_client())
        old = issuer.kid
        assert api.get(STATUS, token=issuer.mint("org_a")).status_code == 200
        new = issuer.add_key()  # Clerk publishes the new key beside the old one
        assert api.get(STATUS, token=issuer.mint("org_a", kid=new)).status_code == 200
        assert issuer.fetches == 2
        assert api.get(STATUS, token=issuer.mint("org_a", kid=old)).status_code == 200
        assert issuer.fetches == 2


def test_jwks_unreachable_is_401_saying_so(api, orgs, issuer, caplog):
    issuer.down = True
    token = issuer.mint("org_a")
    with caplog.at_level(logging.WARNING):
        response = api.get(STATUS, token=token)
    assert response.status_code == 401 and details(response)["error_code"] == "CLERK_KEYS_UNAVAILABLE"
    assert any("Clerk JWKS unavailable" in r.getMessage() for r in caplog.records)
    assert not any(token in r.getMessage() for r in caplog.records)


def test_no_active_organization_reaches_nothing_tenant_scoped(api, orgs, issuer):
    token = issuer.mint(None)
    b_run = make_run("org_a", "running")
    for method, template in PATH_ENDPOINTS:
        response = api.open(method, url(template, "org_a"), token=token)
        assert response.status_code == 403 and details(response)["error_type"] == "forbidden", template
    for method, template in HEADER_ENDPOINTS:
        assert api.open(method, template, token=token).status_code == 403, template
        assert api.open(method, template, token=token, org="org_a").status_code == 403, template
    # Without an organization the token holds no role, so no scope: the scope check (issue 16 part 2)
    # answers 403 before any run is looked up, the same for a real run id as for an unknown one.
    for method, template in RUN_ENDPOINTS:
        real = api.open(method, url(template, sync=b_run.sync_id), token=token)
        unknown = api.open(method, url(template, sync="sync_nope"), token=token)
        assert real.status_code == unknown.status_code == 403, template
        assert details(real)["error_code"] == details(unknown)["error_code"] == "SCOPE_REQUIRED", template
    assert api.get("/api/v1/organizations", token=token).get_json()["organizations"] == []
    db.session.refresh(b_run)
    assert not b_run.cancel_requested and db.session.query(SyncRun).count() == 1


def test_an_organization_we_do_not_know_is_403_and_never_created(api, orgs, issuer):
    token = issuer.mint("org_2xwHiNrj68eaRUlX10anlXGvzX7")
    for method, template in PATH_ENDPOINTS:
        response = api.open(method, url(template, "org_2xwHiNrj68eaRUlX10anlXGvzX7"), token=token)
        assert response.status_code == 403, template
    for method, template in HEADER_ENDPOINTS:
        assert api.open(method, template, token=token).status_code == 403, template
    assert db.session.get(Organization, "org_2xwHiNrj68eaRUlX10anlXGvzX7") is None
    assert db.session.query(ClerkUser).count() == 0
    odd = issuer.mint("org\x00a")  # odd ids never reach the database as lookups that fail
    assert api.get(STATUS, token=odd).status_code == 403


def test_a_role_the_map_does_not_know_has_no_access(api, orgs, issuer):
    token = issuer.mint("org_a", "billing")
    for method, template in PATH_ENDPOINTS:
        assert api.open(method, url(template, "org_a"), token=token).status_code == 403, template


def test_the_role_map_gives_roles_and_scopes(make_app, sim_server, issuer):
    app = make_app(
        CLINIKO_BASE_URL=sim_server.base_url,
        **issuer.settings(CLERK_ROLE_MAP="admin=operator+patients:read, member=viewer"),
    )
    with app.app_context():
        make_org("org_a", api_key="clerk-a-au1")
        api = CheckedClient(app.test_client())
        member = issuer.mint("org_a", "member", user="user_member")
        assert api.get(STATUS, token=member).status_code == 200
        response = api.post("/api/v1/sync/start/org_a", token=member)
        assert response.status_code == 403 and details(response)["error_code"] == "ROLE_REQUIRED"
        for role, scopes, ours in [
            ("admin", {"sync", "patients:read"}, "operator"),
            ("member", {"sync"}, "viewer"),
            ("guest", set(), None),
        ]:
            headers = {"Authorization": f"Bearer {issuer.mint('org_a', role)}"}
            with app.test_request_context(STATUS, headers=headers):
                principal = current_principal()
                assert principal.scopes == frozenset(scopes) and principal.role_in("org_a") == ours
                assert principal.user is None and principal.token is None and not principal.sees_all


def test_the_default_role_map_and_its_format():
    assert parse_role_map("admin=operator,member=operator") == {
        "admin": RoleGrant("operator", frozenset({"sync"})),
        "member": RoleGrant("operator", frozenset({"sync"})),
    }
    assert parse_role_map("org:admin=admin+patients:read")["admin"].scopes == {"sync", "patients:read"}
    for bad in ("admin", "admin=root", "admin=operator+everything", "admin=operator;member=viewer"):
        with pytest.raises(ConfigError):
            parse_role_map(bad)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"CLERK_ISSUER": "https://x.clerk.accounts.dev"}, "CLERK_AUTHORIZED_PARTIES"),
        (
            {"CLERK_JWKS_URL": "https://api.clerk.com/v1/jwks", "CLERK_AUTHORIZED_PARTIES": [FRONT_END]},
            "CLERK_ISSUER",
        ),
        (
            {
                "CLERK_ISSUER": "https://x.dev",
                "CLERK_AUTHORIZED_PARTIES": [FRONT_END],
                "CLERK_ROLE_MAP": "a=b",
            },
            "CLERK_ROLE_MAP",
        ),
    ],
)
def test_bad_clerk_settings_stop_start_up(base_config, settings, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**base_config, **settings})


def test_the_jwks_url_and_the_issuer_derive_from_each_other(make_app, issuer):
    from routiq_admin.clerk import verifier

    app = make_app(CLERK_JWKS_URL=issuer.url + "/.well-known/jwks.json", CLERK_AUTHORIZED_PARTIES=[FRONT_END])
    with app.app_context():
        assert verifier().settings.issuer == issuer.url
    app = make_app(CLERK_ISSUER=issuer.url + "/", CLERK_AUTHORIZED_PARTIES=[FRONT_END])
    with app.app_context():
        assert verifier().settings.jwks_url == issuer.url + "/.well-known/jwks.json"


def test_with_clerk_off_a_jwt_is_just_an_invalid_token(make_app, sim_server, issuer):
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url)
    with app.app_context():
        make_org("org_a", api_key="clerk-a-au1")
        response = CheckedClient(app.test_client()).get(STATUS, token=issuer.mint("org_a"))
        assert response.status_code == 401 and details(response)["error_code"] == "AUTH_REQUIRED"
        assert issuer.fetches == 0


def test_clerk_tokens_open_no_dashboard_page(app, orgs, issuer):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {issuer.mint('org_a')}"}
    response = client.get("/orgs/org_a", headers=headers)
    assert response.status_code in (302, 401)
    assert client.get("/orgs/org_a/settings", headers={**headers, "HX-Request": "true"}).status_code == 401
    assert issuer.fetches == 0


def test_clerk_tokens_skip_csrf_and_count_against_the_limits(make_app, sim_server, issuer):
    app = make_app(
        CLINIKO_BASE_URL=sim_server.base_url, WTF_CSRF_ENABLED=True, API_RATE_LIMIT_WORK_PER_MINUTE=1,
        **issuer.settings(),
    )  # fmt: skip
    with app.app_context():
        make_org("org_a", api_key="clerk-a-au1")
        api = CheckedClient(app.test_client())
        assert api.post("/api/v1/sync/cleanup", token=issuer.mint("org_a")).status_code == 200
        response = api.post("/api/v1/sync/cleanup", token=issuer.mint("org_a"))
        assert response.status_code == 429
        # Another Clerk user has a budget of its own.
        assert (
            api.post("/api/v1/sync/cleanup", token=issuer.mint("org_a", user="user_other")).status_code == 200
        )


def test_tokens_never_reach_logs_or_responses(api, orgs, issuer, caplog):
    tokens = [
        issuer.mint("org_a"),
        issuer.mint("org_b"),
        issuer.mint("org_a", exp=int(time.time()) - 60),
        issuer.mint("org_a", azp="https://evil.example.com"),
        issuer.forge("HS256"),
        issuer.mint("org_a", kid=issuer.add_key(publish=False)),
    ]
    bodies = []
    with caplog.at_level(logging.DEBUG):
        for token in tokens:
            for method, template in ALL:
                bodies.append(api.open(method, url(template, "org_a"), token=token).get_data(as_text=True))
    signatures = [t.rsplit(".", 1)[1] for t in tokens if not t.endswith(".")]
    for text in [r.getMessage() for r in caplog.records] + bodies:
        assert not any(part in text for t in tokens for part in (t, *signatures)), text


def test_last_seen_per_clerk_user_on_the_settings_page(app, orgs, issuer):
    api = CheckedClient(app.test_client())
    assert api.get(STATUS, token=issuer.mint("org_a", user="user_alice")).status_code == 200
    assert api.get(STATUS, token=issuer.mint("org_a", "member", user="user_bob")).status_code == 200
    assert (
        api.get("/api/v1/cliniko/status/org_b", token=issuer.mint("org_b", user="user_carol")).status_code
        == 200
    )
    first = db.session.query(ClerkUser).filter_by(clerk_user_id="user_alice").one()
    seen_at = first.last_seen_at
    assert api.get(STATUS, token=issuer.mint("org_a", user="user_alice")).status_code == 200
    db.session.refresh(first)
    assert first.last_seen_at == seen_at  # written at most once a minute
    assert {(u.organization_id, u.clerk_user_id) for u in db.session.query(ClerkUser)} == {
        ("org_a", "user_alice"),
        ("org_a", "user_bob"),
        ("org_b", "user_carol"),
    }

    make_user("admin@example.com", org=orgs[0], role="admin")
    browser = app.test_client()
    login(browser, "admin@example.com")
    page = browser.get("/orgs/org_a/settings").get_data(as_text=True)
    assert "Clerk sign-in" in page and "user_alice" in page and "user_bob" in page
    assert "user_carol" not in page  # another organization's people
    assert "admin</code> → operator (sync)" in page
    for token in (issuer.mint("org_a"), issuer.mint("org_b")):
        assert '"eyJ' not in page and token not in page


def test_clerk_settings_from_the_environment(tmp_path):
    from routiq_admin.clerk import ClerkSettings
    from routiq_admin.config import load_config

    config = load_config(tmp_path, env={})
    assert ClerkSettings.from_config(config) is None  # off by default
    env = {
        "CLERK_ISSUER": " https://clerk.example.com/ ",
        "CLERK_AUTHORIZED_PARTIES": "https://app.example.com, https://admin.example.com/",
        "CLERK_ROLE_MAP": "admin=operator+patients:read,member=viewer",
        "CLERK_JWKS_COOLDOWN_SECONDS": "10",
    }
    settings = ClerkSettings.from_config(load_config(tmp_path, env=env))
    assert settings.issuer == "https://clerk.example.com"
    assert settings.jwks_url == "https://clerk.example.com/.well-known/jwks.json"
    assert settings.authorized_parties == ("https://app.example.com", "https://admin.example.com")
    assert settings.audience is None and settings.cooldown == 10
    assert settings.role_map["member"] == RoleGrant("viewer", frozenset({"sync"}))

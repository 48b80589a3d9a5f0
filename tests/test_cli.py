"""Operator commands (names are a contract scripts depend on)."""

from sqlalchemy import select

from routiq_admin.extensions import db
from routiq_admin.models import ApiToken, Membership, Organization, User, hash_token


def test_orgs_users_tokens(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["orgs", "create", "org_cli", "--name", "CLI Clinic", "--cliniko-api-key", "KEYKEY5678-uk1"]
    )
    assert result.exit_code == 0, result.output
    assert "KEYKEY5678" not in result.output and "uk1" in result.output
    org = db.session.get(Organization, "org_cli")
    assert org.api_key == "KEYKEY5678-uk1"

    assert runner.invoke(args=["orgs", "create", "org_cli", "--name", "Again"]).exit_code != 0
    bad = runner.invoke(args=["orgs", "create", "org.with.dots", "--name", "Bad"])
    assert bad.exit_code != 0 and "letters, digits" in bad.output

    result = runner.invoke(
        args=[
            "users",
            "create",
            "Ops@Example.com",
            "--password",
            "s3cret!",
            "--org",
            "org_cli",
            "--role",
            "operator",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.execute(select(User).filter_by(email="ops@example.com")).scalar_one()
    assert user.check_password("s3cret!")
    assert db.session.execute(select(Membership)).scalar_one().role == "operator"
    assert (
        runner.invoke(
            args=["users", "create", "x@example.com", "--password", "p", "--org", "org_cli"]
        ).exit_code
        != 0
    )

    result = runner.invoke(args=["users", "create", "root@example.com", "--password", "p", "--superuser"])
    assert result.exit_code == 0

    result = runner.invoke(args=["tokens", "create", "--org", "org_cli", "--name", "ci"])
    assert result.exit_code == 0, result.output
    clear = result.output.strip().splitlines()[-1]
    token = db.session.execute(select(ApiToken).filter_by(token_hash=hash_token(clear))).scalar_one()
    assert token.organization_id == "org_cli" and token.name == "ci"

    result = runner.invoke(args=["tokens", "create", "--all-orgs"])
    assert result.exit_code == 0
    all_clear = result.output.strip().splitlines()[-1]
    assert (
        db.session.execute(select(ApiToken).filter_by(token_hash=hash_token(all_clear)))
        .scalar_one()
        .all_organizations
    )
    assert runner.invoke(args=["tokens", "create"]).exit_code != 0
    assert runner.invoke(args=["tokens", "create", "--org", "org_missing"]).exit_code != 0


def test_demo_seed_is_idempotent_and_prints_login(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    second = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "admin@example.com" in first.output
    assert first.output == second.output
    password = first.output.strip().split(" / ")[-1]
    user = db.session.execute(select(User).filter_by(email="admin@example.com")).scalar_one()
    assert user.check_password(password) and user.is_superuser
    assert db.session.get(Organization, "org_demo_clinic").has_credentials

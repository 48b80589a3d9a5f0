"""Operator commands (names are a contract scripts depend on)."""

from sqlalchemy import select

from routiq_admin.extensions import db
from routiq_admin.models import ApiToken, Membership, Organization, User, hash_token
from tests.factories import make_org


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


def test_orgs_schedule_sets_interval_cron_and_quiet_window(app):

    make_org("org_cli", api_key="cli-key-au1", time_zone="Australia/Sydney")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["orgs", "schedule", "org_cli", "--every", "30m", "--quiet", "08:00-18:00"])
    assert result.exit_code == 0, result.output
    assert "org_cli: every 30 min · quiet 08:00–18:00 · full pass 02:30 (Australia/Sydney)" in result.output
    assert len([line for line in result.output.splitlines() if line.endswith(("AEDT", "AEST"))]) == 5
    db.session.rollback()
    org = db.session.get(Organization, "org_cli")
    assert (org.schedule_every_minutes, org.schedule_cron, org.quiet_start, org.quiet_end) == (
        30,
        None,
        "08:00",
        "18:00",
    )
    assert org.next_run_at is not None
    result = runner.invoke(args=["orgs", "schedule", "org_cli", "--cron", "0 */2 * * *"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    org = db.session.get(Organization, "org_cli")
    assert (org.schedule_every_minutes, org.schedule_cron, org.quiet_start) == (None, "0 */2 * * *", None)
    assert runner.invoke(args=["orgs", "schedule", "org_cli", "--every", "2h"]).exit_code == 0
    db.session.rollback()
    assert db.session.get(Organization, "org_cli").schedule_every_minutes == 120


def test_orgs_schedule_refuses_bad_input(app):
    make_org("org_cli", api_key="cli-key-au1")
    runner = app.test_cli_runner()
    for args, message in (
        (["--cron", "61 * * * *"], "not a valid cron"),
        (["--cron", "* * * * *"], "shortest is 15 min"),
        (["--every", "5m"], "from 15m to 24h"),
        (["--every", "soon"], "30m or 2h"),
        (["--every", "30m", "--cron", "0 * * * *"], "exactly one of --every or --cron"),
        ([], "exactly one of --every or --cron"),
        (["--every", "30m", "--quiet", "8-18"], "HH:MM-HH:MM"),
    ):
        result = runner.invoke(args=["orgs", "schedule", "org_cli", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    result = runner.invoke(args=["orgs", "schedule", "org_nope", "--every", "30m"])
    assert result.exit_code != 0 and "no organization org_nope" in result.output

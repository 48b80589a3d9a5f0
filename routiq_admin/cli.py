"""Operator commands: `flask --app wsgi orgs|users|tokens|demo ...` (names are a contract)."""

import secrets
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .auth import ROLES
from .extensions import db
from .models import ApiToken, Membership, Organization, User

orgs_cli = AppGroup("orgs", help="Manage organizations.")
users_cli = AppGroup("users", help="Manage people who log in.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
demo_cli = AppGroup("demo", help="The demo clinic `make run` starts with.")


def _org_or_fail(org_id):
    org = db.session.get(Organization, org_id)
    if org is None:
        raise click.ClickException(f"no organization {org_id}")
    return org


@orgs_cli.command("create")
@click.argument("org_id")
@click.option("--name", required=True)
@click.option("--cliniko-api-key", default=None, help="Stored encrypted; never printed.")
def create_org(org_id, name, cliniko_api_key):
    """Create an organization."""
    if db.session.get(Organization, org_id):
        raise click.ClickException(f"organization {org_id} exists")
    org = Organization(id=org_id, name=name)
    if cliniko_api_key:
        org.set_api_key(cliniko_api_key)
    db.session.add(org)
    db.session.commit()
    click.echo(
        f"created {org.id} ({org.name}) key={org.masked_key or 'none'} region={org.cliniko_shard or '-'}"
    )


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True)
@click.option("--superuser", is_flag=True)
@click.option("--org", "org_id", default=None)
@click.option("--role", type=click.Choice(ROLES), default=None)
def create_user(email, password, superuser, org_id, role):
    """Create a person, optionally with a role in one organization."""
    if bool(org_id) != bool(role):
        raise click.ClickException("--org and --role go together")
    email = email.strip().lower()
    if db.session.execute(select(User).where(User.email == email)).scalar_one_or_none():
        raise click.ClickException(f"user {email} exists")
    user = User(email=email, is_superuser=superuser)
    user.set_password(password)
    db.session.add(user)
    if org_id:
        _org_or_fail(org_id)
        db.session.add(Membership(user=user, organization_id=org_id, role=role))
    db.session.commit()
    click.echo(
        f"created user {email}"
        + (" (superuser)" if superuser else "")
        + (f" {role} of {org_id}" if org_id else "")
    )


@tokens_cli.command("create")
@click.option("--org", "org_id", default=None)
@click.option("--all-orgs", is_flag=True)
@click.option("--name", default="API token")
def create_token(org_id, all_orgs, name):
    """Create an API token; the token itself is the last line printed, shown once."""
    if bool(org_id) == all_orgs:
        raise click.ClickException("give --org ORG_ID or --all-orgs")
    if org_id:
        _org_or_fail(org_id)
    row, clear = ApiToken.issue(name=name, organization_id=org_id, all_organizations=all_orgs)
    db.session.add(row)
    db.session.commit()
    click.echo(f"token {row.token_prefix}… for {org_id or 'all organizations'} (shown once):")
    click.echo(clear)


DEMO_ORG_ID = "org_demo_clinic"
DEMO_EMAIL = "admin@example.com"


@demo_cli.command("seed")
@click.option("--api-key", default="demo-clinic-key-au1")
def seed_demo(api_key):
    """Create (or refresh) the demo organization and admin login, and print the login."""
    password_file = Path(current_app.instance_path) / "demo_password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(9))
    password = password_file.read_text().strip()
    org = db.session.get(Organization, DEMO_ORG_ID)
    if org is None:
        org = Organization(id=DEMO_ORG_ID, name="Demo Physio Clinic")
        org.set_api_key(api_key)
        db.session.add(org)
    user = db.session.execute(select(User).where(User.email == DEMO_EMAIL)).scalar_one_or_none()
    if user is None:
        user = User(email=DEMO_EMAIL, is_superuser=True)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    click.echo(f"Demo login: {DEMO_EMAIL} / {password}")


def register_cli(app):
    """Attach the operator command groups."""
    for group in (orgs_cli, users_cli, tokens_cli, demo_cli):
        app.cli.add_command(group)

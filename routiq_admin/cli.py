"""Operator commands: `flask --app wsgi orgs|users|tokens|demo ...` (names are a contract)."""

import re
import secrets
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select, update

from . import crypto, logs
from .auth import ROLES
from .errors import AppError
from .extensions import db
from .models import (
    DEFAULT_SCOPES,
    SCOPES,
    ApiToken,
    Membership,
    NotificationTarget,
    Organization,
    User,
    utcnow,
)
from .notify import EVENT_TYPES
from .notify import targets as notify_targets
from .sync import cadence
from .sync.engine import run_in_foreground
from .sync.plan import ALL_MODES, DEFAULT_MODE, IMPORT_MODE, cli_job_id
from .sync.runs import create_run

orgs_cli = AppGroup("orgs", help="Manage organizations.")
users_cli = AppGroup("users", help="Manage people who log in.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")
demo_cli = AppGroup("demo", help="The demo clinic `make run` starts with.")
sync_cli = AppGroup("sync", help="Run syncs from the terminal.")
cliniko_cli = AppGroup("cliniko", help="Cliniko tools (the simulator).")
keys_cli = AppGroup("keys", help="ENCRYPTION_KEY rotation.")
notify_cli = AppGroup("notify", help="Sync notifications: email recipients and signed webhooks.")


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
    try:
        org = Organization(id=org_id, name=name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if cliniko_api_key:
        org.set_api_key(cliniko_api_key)
    db.session.add(org)
    db.session.commit()
    click.echo(
        f"created {org.id} ({org.name}) key={org.masked_key or 'none'} region={org.cliniko_shard or '-'}"
    )


def _every_minutes(value):
    match = re.fullmatch(r"\s*(\d+)\s*(m|min|h)?\s*", value or "")
    if not match:
        raise click.BadParameter("use minutes or hours, e.g. 30m or 2h", param_hint="--every")
    minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1)
    if not cadence.MIN_EVERY <= minutes <= cadence.MAX_EVERY:
        raise click.BadParameter(f"from {cadence.MIN_EVERY}m to 24h", param_hint="--every")
    return minutes


def _quiet(value):
    try:
        start, end = (cadence.parse_hhmm(part) for part in value.split("-"))
    except ValueError:
        raise click.BadParameter("use HH:MM-HH:MM, e.g. 08:00-18:00", param_hint="--quiet") from None
    if start == end:
        raise click.BadParameter("the window needs two different times", param_hint="--quiet")
    return f"{start:%H:%M}", f"{end:%H:%M}"


@orgs_cli.command("schedule")
@click.argument("org_id")
@click.option("--every", default=None, help="An interval: 30m, 2h (15m to 24h).")
@click.option(
    "--cron", default=None, help='A five-field cron expression in the clinic\'s zone, e.g. "0 */2 * * *".'
)
@click.option("--quiet", default=None, help="No scheduled start in this local window, e.g. 08:00-18:00.")
def schedule_org(org_id, every, cron, quiet):
    """Set an organization's schedule (interval or cron, optional quiet window) and print the next runs."""
    if bool(every) == bool(cron):
        raise click.UsageError("give exactly one of --every or --cron")
    org = _org_or_fail(org_id)
    if cron:
        error = cadence.cron_error(cron)
        if error:
            raise click.BadParameter(error, param_hint="--cron")
        org.schedule_cron, org.schedule_every_minutes = cron.strip(), None
    else:
        org.schedule_cron, org.schedule_every_minutes = None, _every_minutes(every)
    org.quiet_start, org.quiet_end = _quiet(quiet) if quiet else (None, None)
    if not quiet:
        org.quiet_weekdays_only = False
    try:
        cadence.reschedule(org)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    sched = cadence.schedule_of(org)
    click.echo(f"{org.id}: {sched.describe()}")
    tz = sched.tz
    for moment in cadence.preview(sched, utcnow()):
        local = moment.astimezone(tz)
        click.echo(f"  {local:%a %Y-%m-%d %H:%M} {local.tzname()}")


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
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What the token may do (repeatable; default: sync).",
)
def create_token(org_id, all_orgs, name, scopes):
    """Create an API token; the token itself is the last line printed, shown once."""
    if bool(org_id) == all_orgs:
        raise click.ClickException("give --org ORG_ID or --all-orgs")
    if org_id:
        _org_or_fail(org_id)
    scopes = scopes or DEFAULT_SCOPES
    row, clear = ApiToken.issue(name=name, organization_id=org_id, all_organizations=all_orgs, scopes=scopes)
    db.session.add(row)
    db.session.commit()
    click.echo(
        f"token {row.token_prefix}… for {org_id or 'all organizations'}, scopes {row.scopes} (shown once):"
    )
    click.echo(clear)


DEMO_ORG_ID = "org_demo_clinic"
DEMO_EMAIL = "admin@example.com"


DEMO_SLOW_ORG_ID = "org_demo_slow_clinic"


@demo_cli.command("seed")
@click.option("--api-key", default="demo-clinic-key-au1")
@click.option(
    "--slow-api-key", default=None, help="Also seed a second clinic with this key (`make run`: a slow one)."
)
def seed_demo(api_key, slow_api_key):
    """Create (or refresh) the demo organization(s) and admin login, and print the login."""
    password_file = Path(current_app.instance_path) / "demo_password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(9))
    password = password_file.read_text().strip()
    org = db.session.get(Organization, DEMO_ORG_ID)
    if org is None:
        org = Organization(id=DEMO_ORG_ID, name="Demo Physio Clinic")
        org.set_api_key(api_key)
        db.session.add(org)
    if slow_api_key and db.session.get(Organization, DEMO_SLOW_ORG_ID) is None:
        slow = Organization(id=DEMO_SLOW_ORG_ID, name="Demo Slow Clinic")
        slow.set_api_key(slow_api_key)
        db.session.add(slow)
    user = db.session.execute(select(User).where(User.email == DEMO_EMAIL)).scalar_one_or_none()
    if user is None:
        user = User(email=DEMO_EMAIL, is_superuser=True)
        db.session.add(user)
    user.set_password(password)
    db.session.commit()
    if not db.session.execute(select(NotificationTarget).filter_by(organization_id=org.id)).first():
        notify_targets.add_email(org, DEMO_EMAIL)  # failures reach `make run`'s mail sink
    click.echo(f"Demo login: {DEMO_EMAIL} / {password}")


@sync_cli.command("run")
@click.argument("org_id")
@click.option("--mode", type=click.Choice(ALL_MODES), default=DEFAULT_MODE, show_default=True)
@click.option("--full", is_flag=True, help="Ignore the incremental marks for this run.")
def sync_run(org_id, mode, full):
    """Run a sync in the foreground with a progress bar; the exit status says how it ended."""
    org = _org_or_fail(org_id)
    if not org.has_credentials:
        raise click.ClickException(f"{org_id} has no Cliniko API key (credentials_not_found)")
    kind = "import" if mode == IMPORT_MODE else "sync"
    job_id = cli_job_id()
    try:
        run = create_run(
            org,
            kind=kind,
            mode=mode,
            trigger="manual",
            full=full or kind == "import",
            label="flask sync run",
            job_id=job_id,
        )
    except AppError as exc:
        raise click.ClickException(f"{exc.message} ({exc.error_type})") from None
    logs.bind(job_id=job_id, sync_id=run.sync_id, organization_id=org.id)
    with click.progressbar(length=1000, label=run.sync_id, show_percent=True) as bar:
        state = {"shown": 0}

        def on_progress(engine):
            target = int(engine.percentage * 10)
            bar.update(max(0, target - state["shown"]))
            state["shown"] = max(state["shown"], target)

        status = run_in_foreground(run.id, job_id, on_progress=on_progress)
        if status == "completed":
            bar.update(1000 - state["shown"])
    db.session.refresh(run)
    click.echo(
        f"{run.sync_id}: {run.status} · {run.records_processed} records · {run.cliniko_requests} Cliniko requests"
    )
    for error in run.errors or []:
        click.echo(f"  error {error['error_type']} ({error['error_code']}): {error['message']}", err=True)
    if run.status != "completed":
        raise SystemExit(1)


@cliniko_cli.command("simulate")
@click.option("--port", type=int, default=8900, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--patients", type=int, default=651, show_default=True)
@click.option("--appointments", type=int, default=296, show_default=True)
@click.option("--latency-ms", type=int, default=0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate-limit", type=int, default=200, show_default=True, help="Requests per minute per key.")
@click.option("--key", "keys", multiple=True, help="Accept only these API keys (repeatable).")
@click.option(
    "--key-latency",
    "key_latency",
    multiple=True,
    metavar="KEY=MS",
    help="Answer this key's requests MS ms late (repeatable; a latency fault until cleared).",
)
def simulate(port, host, patients, appointments, latency_ms, seed, rate_limit, keys, key_latency):
    """Serve a fake Cliniko (one clinic per API key) for demos, tests and benchmarks."""
    # The simulator is a test stand-in: only this command loads it, never the app itself.
    from .cliniko.simulator import serve

    serve(
        host=host,
        port=port,
        patients=patients,
        appointments=appointments,
        latency_ms=latency_ms,
        seed=seed,
        keys=list(keys) or None,
        rate_limit_per_minute=rate_limit,
        key_latency=dict(_key_ms(item) for item in key_latency),
    )


@keys_cli.command("rotate")
def rotate_keys():
    """Re-encrypt every stored Cliniko key with the first ENCRYPTION_KEY (idempotent, resumable)."""
    ids = db.session.execute(
        select(Organization.id)
        .where(Organization.cliniko_api_key_encrypted.is_not(None))
        .order_by(Organization.id)
    ).scalars()
    rotated = current = skipped = 0
    for org_id in list(ids):
        stored = db.session.execute(
            select(Organization.cliniko_api_key_encrypted).where(Organization.id == org_id)
        ).scalar()
        if stored is None or crypto.is_current(stored):
            current += 1
            continue
        try:
            fresh = crypto.rotate(stored)
        except RuntimeError as exc:
            raise click.ClickException(f"{org_id}: {exc}") from None
        # One commit per organization, and only over the value read: an interrupted run leaves
        # every row readable, and a key changed meanwhile in Settings is never overwritten.
        changed = db.session.execute(
            update(Organization)
            .where(Organization.id == org_id, Organization.cliniko_api_key_encrypted == stored)
            .values(cliniko_api_key_encrypted=fresh)
        ).rowcount
        db.session.commit()
        rotated += changed
        skipped += 1 - changed
    click.echo(f"rotated {rotated} stored key(s); {current} already on the first key")
    if skipped:
        click.echo(f"{skipped} key(s) changed while rotating: run it again", err=True)


@notify_cli.command("add")
@click.argument("org_id")
@click.option("--email", "emails", multiple=True, help="A recipient (repeatable, or comma-separated).")
@click.option(
    "--webhook", "url", default=None, help="An http(s) endpoint; its signing secret is printed last."
)
@click.option(
    "--events",
    default="",
    help=f"Comma-separated, of {', '.join(EVENT_TYPES)} (default: all but sync.completed).",
)
def notify_add(org_id, emails, url, events):
    """Notify email recipients or a webhook endpoint of an organization's sync events."""
    org = _org_or_fail(org_id)
    if bool(emails) == bool(url):
        raise click.ClickException("give --email ADDRESS or --webhook URL")
    try:
        if emails:
            target = notify_targets.add_email(org, ",".join(emails), events)
            click.echo(
                f"notification {target.id}: email {target.label} for {org.id} ({', '.join(target.events)})"
            )
            return
        target, secret = notify_targets.add_webhook(org, url, events)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"notification {target.id}: webhook {target.url} for {org.id} ({', '.join(target.events)})")
    click.echo("signing secret (shown once):")
    click.echo(secret)


@notify_cli.command("list")
@click.argument("org_id")
def notify_list(org_id):
    """List an organization's notification targets (secrets are never shown again)."""
    org = _org_or_fail(org_id)
    stmt = select(NotificationTarget).where(NotificationTarget.organization_id == org.id)
    targets = db.session.execute(stmt.order_by(NotificationTarget.id)).scalars().all()
    if not targets:
        click.echo(f"no notifications for {org.id}")
    for target in targets:
        state = "on" if target.enabled else f"off since {target.disabled_at:%Y-%m-%d %H:%M} UTC"
        click.echo(f"{target.id}\t{target.kind}\t{target.label}\t{','.join(target.events)}\t{state}")


def _key_ms(item):
    key, sep, ms = item.partition("=")
    if not sep or not ms.isdigit():
        raise click.BadParameter(f"{item!r}: use KEY=MS", param_hint="--key-latency")
    return key, int(ms)


def register_cli(app):
    """Attach the operator command groups."""
    for group in (orgs_cli, users_cli, tokens_cli, demo_cli, sync_cli, cliniko_cli, keys_cli, notify_cli):
        app.cli.add_command(group)

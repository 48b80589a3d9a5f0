"""A fleet of 1,000 organizations in known states, inserted in bulk (tests and the bench share it)."""

from datetime import timedelta

from sqlalchemy import insert

from routiq_admin.extensions import db
from routiq_admin.models import Membership, Organization, SyncRun, User, utcnow

SIZE = 1000
PASSWORD = "pw-123456"
# Category (i % 10) → (runs as (status, minutes ago), the states it must show, consecutive failures).
CATEGORIES = {
    0: ([("completed", 10), ("running", 1)], {"running"}, 0),
    1: ([("completed", 30), ("failed", 20), ("failed", 10)], {"failing"}, 2),
    2: ([("completed", 180)], {"stale"}, 0),
    3: ([], {"never_synced"}, 0),
    4: ([("failed", 15)], {"failing", "never_synced"}, 1),
    5: ([("completed", 10)], {"failing"}, 0),  # Cliniko refused the key since
    6: ([("failed", 40), ("completed", 30)], set(), 0),  # recovered
    7: ([("completed", 50), ("failed", 30), ("cancelled", 10)], {"failing"}, 1),  # a cancel says nothing
    8: ([("completed", 10)], set(), 0),
    9: ([("completed", 300)], set(), 0),  # sync off: never stale
}


def org_id(i):
    return f"org_f{i:04d}"


def is_member(i):
    """The member's clinics: two in three."""
    return i % 3 != 0


def expected(i):
    """Return (states, failures) organization `i` must show."""
    _, states, failures = CATEGORIES[i % 10]
    states = set(states)
    if paused(i):
        states.add("paused")
    return states, failures


def paused(i):
    return hasattr(Organization, "paused_at") and i % 20 == 8


def build(size=SIZE, history=0):
    """Insert `size` organizations with their runs, a member of two in three (viewer) and a superuser.

    `history`: that many older completed runs (hourly, before the plan's) for every organization
    that has a completed run, as months of scheduled syncs leave behind.
    """
    now = utcnow()
    orgs, runs = [], []
    for i in range(size):
        cat = i % 10
        row = {
            "id": org_id(i),
            "name": "Harbour 100% Physio" if i == 7 else f"Clinic {i:04d}",
            "credentials_valid": cat != 5,
            "sync_enabled": cat != 9,
            "time_zone": "UTC",
            "created_at": now,
        }
        if paused(i):
            row["paused_at"] = now - timedelta(hours=1)
        orgs.append(row)
        plan = list(CATEGORIES[cat][0])
        if any(status == "completed" for status, _ in plan):
            plan = [("completed", 400 + 60 * h) for h in range(history, 0, -1)] + plan
        for n, (status, minutes) in enumerate(plan):
            if cat == 2:
                minutes += i  # stale ones differ in age, to check the sort
            created = now - timedelta(minutes=minutes)
            done = status not in ("running", "starting")
            runs.append(
                {
                    "sync_id": f"sync_{org_id(i)}_{n}",
                    "organization_id": org_id(i),
                    "kind": "sync",
                    "trigger": "scheduled",
                    "mode": "comprehensive",
                    "status": status,
                    "created_at": created,
                    "started_at": created,
                    "heartbeat_at": created,
                    "completed_at": created + timedelta(seconds=30) if done else None,
                    "errors": [],
                    "entity_counts": {},
                    "run_metadata": {},
                    "job_id": f"job-{i}-{n}",
                }
            )
    db.session.execute(insert(Organization), orgs)
    db.session.execute(insert(SyncRun), runs)
    member = User(email="member@example.com")
    boss = User(email="boss@example.com", is_superuser=True)
    for user in (member, boss):
        user.set_password(PASSWORD)
        db.session.add(user)
    db.session.flush()
    db.session.execute(
        insert(Membership),
        [
            {"user_id": member.id, "organization_id": org_id(i), "role": "viewer"}
            for i in range(size)
            if is_member(i)
        ],
    )
    db.session.commit()

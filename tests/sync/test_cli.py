"""`flask --app wsgi sync run ORG_ID [--mode] [--full]`: the engine in the foreground."""

from sqlalchemy import select

from routiq_admin.extensions import db
from routiq_admin.models import Patient, SyncRun
from routiq_admin.sync.runs import start_sync

from .conftest import KEY, ORG_ID, distinct_ids, requests


def runs():
    db.session.rollback()
    return db.session.execute(select(SyncRun).order_by(SyncRun.id)).scalars().all()


def test_sync_run_completes_with_exit_status_0(sync_app, org, account, sim):
    result = sync_app.test_cli_runner().invoke(args=["sync", "run", ORG_ID, "--mode", "patients-only"])
    assert result.exit_code == 0, result.output
    (run,) = runs()
    assert run.status == "completed" and run.mode == "patients-only" and run.trigger == "manual"
    assert run.job_id.startswith("cli-")
    assert f"{run.sync_id}: completed" in result.output
    assert distinct_ids(Patient) == set(account.patient_ids())
    # --full ignores the mark it just set
    sim.reset_stats()
    result = sync_app.test_cli_runner().invoke(
        args=["sync", "run", ORG_ID, "--mode", "patients-only", "--full"]
    )
    assert result.exit_code == 0, result.output
    assert runs()[-1].full is True
    assert not any(f.startswith("updated_at") for r in requests(sim) for f in r.q)


def test_import_mode(sync_app, org):
    result = sync_app.test_cli_runner().invoke(args=["sync", "run", ORG_ID, "--mode", "import"])
    assert result.exit_code == 0, result.output
    (run,) = runs()
    assert (run.kind, run.status, run.full) == ("import", "completed", True)
    assert run.sync_id.startswith("import_")


def test_failed_run_exits_1(sync_app, org, sim):
    sim.revoke_key(KEY)
    result = sync_app.test_cli_runner().invoke(args=["sync", "run", ORG_ID])
    assert result.exit_code == 1
    (run,) = runs()
    assert run.status == "failed"
    assert "invalid_credentials" in result.output


def test_unknown_org_busy_org_and_bad_mode_exit_non_zero(sync_app, org):
    runner = sync_app.test_cli_runner()
    result = runner.invoke(args=["sync", "run", "org_nope"])
    assert result.exit_code == 1 and "no organization org_nope" in result.output
    busy = start_sync(org, "comprehensive", "manual")
    result = runner.invoke(args=["sync", "run", ORG_ID])
    assert result.exit_code == 1 and "sync_already_running" in result.output
    assert [r.sync_id for r in runs()] == [busy.sync_id]
    result = runner.invoke(args=["sync", "run", ORG_ID, "--mode", "everything"])
    assert result.exit_code == 2  # click's usage error

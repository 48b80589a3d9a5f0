"""The versus-dlt bench section's path (bench/versus_dlt.py) on the test database, no latency."""

from types import SimpleNamespace

import redis as redis_lib

from bench import versus_dlt


def test_in_process_first_and_unchanged_runs_are_measured(database_url, redis_url, make_app, tmp_path):
    make_app()  # the fixture empties the tables afterwards
    conn = redis_lib.Redis.from_url(redis_url)
    redis = SimpleNamespace(url=redis_url, flush=conn.flushdb)
    result = versus_dlt.scenario(
        redis,
        str(tmp_path),
        name="guide",
        patients=651,
        appointments=296,
        latency_ms=0,
        first_runs=1,
        incremental_runs=1,
        database_url=database_url,
        log=lambda message: None,
    )
    (first,), (unchanged,) = result["first"], result["incremental"]
    assert first["status"] == unchanged["status"] == "completed"
    assert first["requests"] == 14  # the guide clinic's floor
    assert first["rows_written"] >= 651 + 296
    assert first["cpu"] > 0 and first["wall"] > 0
    assert unchanged["requests"] == 6  # 4 reference lists, patients, appointments: one page each
    assert unchanged["rows_written"] == 0
    [_, incremental_row] = versus_dlt.rows({"scenarios": [result], "dlt": "x"})
    assert incremental_row["ratio"] == unchanged["wall"] / versus_dlt.DLT_GUIDE_INCREMENTAL_SECONDS
    assert "0.70 s" in versus_dlt.render({"scenarios": [result], "dlt": "x"})

"""dlt's side of issue 14's comparison: its `rest_api` source against the simulator, in-process.

Run by an interpreter that has dlt (it is not one of our requirements):
`python bench/dlt_side.py --base-url http://127.0.0.1:PORT/au1/v1 --key KEY --destination URL`.
Imports only dlt and the standard library. One first run, then `--incremental` runs on the same
pipeline; prints one JSON line: wall, CPU, requests per run (the simulator's /_sim/stats).
"""

import argparse
import json
import resource
import time
import urllib.request
from urllib.parse import urlsplit

# What our engine fetches; archived and cancelled records included, as ours are.
RESOURCES = (
    ("businesses", "businesses", "businesses?q[]=archived_at:*", False),
    ("practitioners", "practitioners", "practitioners", False),
    ("practitioners_inactive", "practitioners", "practitioners/inactive", False),
    ("appointment_types", "appointment_types", "appointment_types?q[]=archived_at:*", False),
    ("patients", "patients", "patients?q[]=archived_at:*&sort=updated_at:asc", True),
    (
        "individual_appointments",
        "individual_appointments",
        "individual_appointments?q[]=archived_at:*&q[]=cancelled_at:*&sort=updated_at:asc",
        True,
    ),
)


def source(base_url, key):
    from dlt.sources.rest_api import rest_api_source

    resources = []
    for name, selector, path, incremental in RESOURCES:
        endpoint = {"path": path, "data_selector": selector, "params": {"per_page": 100}}
        if incremental:
            endpoint["incremental"] = {
                "start_param": "q[]",
                "cursor_path": "updated_at",
                "initial_value": "1970-01-01T00:00:00Z",
                "convert": lambda value: f"updated_at:>={value}",
            }
        resources.append({"name": name, "endpoint": endpoint})
    return rest_api_source(
        {
            "client": {
                "base_url": base_url.rstrip("/") + "/",
                "auth": {"type": "http_basic", "username": key, "password": ""},
                "headers": {
                    "User-Agent": "Routiq Admin bench (bench@example.com)",
                    "Accept": "application/json",
                },
                "paginator": {"type": "json_link", "next_url_path": "links.next"},
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": "merge",
                "parallelized": True,
            },
            "resources": resources,
        }
    )


def destination(url):
    import dlt

    if url.startswith("sqlite"):
        return dlt.destinations.sqlalchemy(credentials=url)
    parts = urlsplit(url)
    if parts.password is None:  # dlt insists on one; a trust-authenticated server ignores it
        parts = parts._replace(netloc=f"{parts.username}:unused@{parts.hostname}:{parts.port or 5432}")
    return dlt.destinations.postgres(credentials=parts.geturl())


def _sim(base_url, path, method="GET"):
    parts = urlsplit(base_url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/_sim/{path}", method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- called by bench/versus_dlt.py (in our interpreter) -------------------------------------------


def interpreter(dlt_python=None):
    """The interpreter to run dlt's side with: `dlt_python`, else ours if it has dlt, else None."""
    import sys

    if dlt_python:
        return dlt_python
    try:
        import dlt  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def status(python):
    if python is None:
        return "dlt not installed: ratios use the figures in issue 14"
    return (
        f"dlt's rest_api source also ran here ({python}): one first run and 3 unchanged runs per "
        "scenario after ours, same simulator; ratios still use the figures in issue 14"
    )


def measure(python, base_url, key, destination_url, workdir, log=print):
    """dlt's side against the running simulator, on a fresh destination; None-safe on failure."""
    try:
        out = run(python, base_url, key, destination_url, workdir)
    except Exception as exc:  # noqa: BLE001 - dlt's side is optional: report, keep ours
        log(f"    dlt's side failed: {type(exc).__name__} (see {workdir}/dlt.log)")
        return {"error": type(exc).__name__}
    for r in out["runs"]:
        log(
            f"    dlt {out['dlt']}: {r['kind']}: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
            f"{r['requests']} requests"
        )
    return out


def run(python, base_url, key, destination_url, workdir, incremental=3, timeout=900):
    """Run this script under `python` (an interpreter with dlt); return its parsed JSON line."""
    import os
    import subprocess

    with open(os.path.join(workdir, "dlt.log"), "ab") as log:
        done = subprocess.run(
            [python, os.path.abspath(__file__), "--base-url", base_url, "--key", key]
            + ["--destination", destination_url, "--pipelines-dir", os.path.join(workdir, "dlt-pipelines")]
            + ["--incremental", str(incremental)],
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=timeout,
            check=True,
        )
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--destination", required=True, help="sqlite:///path or postgresql://…")
    p.add_argument("--pipelines-dir", required=True)
    p.add_argument("--incremental", type=int, default=3)
    args = p.parse_args()
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name="cliniko",
        pipelines_dir=args.pipelines_dir,
        destination=destination(args.destination),
        dataset_name="cliniko",
        progress=None,
    )
    runs = []
    for index in range(1 + args.incremental):
        _sim(args.base_url, "stats", "DELETE")
        cpu, started = _cpu(), time.perf_counter()
        pipeline.run(source(args.base_url, args.key))
        wall, cpu = time.perf_counter() - started, _cpu() - cpu
        requests = _sim(args.base_url, f"stats?key={args.key}")["requests"]
        runs.append(
            {"kind": "first" if index == 0 else "incremental", "wall": wall, "cpu": cpu, "requests": requests}
        )
    print(json.dumps({"dlt": dlt.__version__, "runs": runs}))


if __name__ == "__main__":
    main()

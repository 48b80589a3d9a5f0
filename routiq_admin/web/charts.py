"""Geometry for the server-rendered SVG chart of recent runs (no chart library, no CDN)."""

WIDTH, HEIGHT = 900, 220
LEFT, RIGHT, TOP, BOTTOM = 60, 52, 14, 30


def _nice(value):
    """Round an axis maximum up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    power = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def axis_seconds(seconds):
    """Return a short axis label for a duration: '45 s', '2.5 min', '1.2 h'."""
    if seconds < 600:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def run_chart(runs, tz, localtime):
    """Return bars (duration), a polyline (records) and axis ticks for runs in time order, or None."""
    runs = [r for r in runs if r.duration_seconds is not None]
    if not runs:
        return None
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    max_d = _nice(max(r.duration_seconds for r in runs))
    max_r = _nice(max(r.records_processed or 0 for r in runs))
    slot = plot_w / len(runs)
    bar_w = max(2.0, min(28.0, slot * 0.6))
    bars, points = [], []
    for i, run in enumerate(runs):
        h = plot_h * run.duration_seconds / max_d
        cx = LEFT + slot * (i + 0.5)
        cy = TOP + plot_h * (1 - (run.records_processed or 0) / max_r)
        bars.append(
            {
                "x": round(cx - bar_w / 2, 1),
                "y": round(TOP + plot_h - h, 1),
                "w": round(bar_w, 1),
                "h": round(max(h, 1), 1),
                "cx": round(cx, 1),
                "cy": round(cy, 1),
                "run": run,
                "title": f"{localtime(run.created_at, tz)}: {run.status}, "
                f"{run.duration_seconds:.1f} s, {run.records_processed or 0} records",
            }
        )
        points.append(f"{cx:.1f},{cy:.1f}")
    ticks = [
        {"y": round(TOP + plot_h * (1 - f), 1), "d": axis_seconds(round(max_d * f, 1)), "r": int(max_r * f)}
        for f in (0, 0.5, 1)
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": TOP + plot_h,
        "bars": bars,
        "line": " ".join(points),
        "ticks": ticks,
        "max_duration": max_d,
        "max_records": max_r,
    }

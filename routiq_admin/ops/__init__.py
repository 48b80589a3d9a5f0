"""Operators' endpoints: /healthz and /readyz, /metrics, the RQ queue view at /admin/rq."""


def init_app(app):
    """Register the health and metrics routes, request metrics under gunicorn, and the queue view."""
    from . import health, metrics

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    if app.config["METRICS_TOKEN"] and app.config["WEB_REQUEST_METRICS"]:
        metrics.init_request_metrics(app)
    if app.config.get("REDIS_URL"):
        from . import rqdash

        rqdash.init_app(app)

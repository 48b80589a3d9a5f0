"""Routiq Admin: keep clinics' data in sync from Cliniko."""

import logging
import os

from flask import Flask

from .config import load_config


def create_app(config=None):
    """Build the Flask app: config, extensions, blueprints, CLI. No I/O beyond instance/."""
    config = dict(config or {})
    app = Flask(
        __name__,
        instance_path=config.get("INSTANCE_PATH")
        or os.environ.get("INSTANCE_PATH")
        or os.path.join(os.getcwd(), "instance"),
        template_folder=os.path.join(os.path.dirname(__file__), "..", "templates"),
        static_folder=os.path.join(os.path.dirname(__file__), "..", "static"),
    )
    if config.get("APP_ENV", os.environ.get("APP_ENV")) != "production":
        from dotenv import load_dotenv

        load_dotenv(override=False)
    app.config.update(load_config(app.instance_path, overrides=config))
    from . import logs

    logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    logs.init_app(app)  # first, so every later hook's log lines carry this request's id
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from .extensions import csrf, database_present, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(database_present)

    from . import auth, handlers, security
    from .web import register_web

    auth.init_app(app)
    handlers.init_app(app)
    security.init_app(app)
    register_web(app)

    from .api import register_api

    register_api(app)

    from .cli import register_cli

    register_cli(app)

    from . import ops

    ops.init_app(app)
    return app

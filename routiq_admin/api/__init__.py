"""JSON API blueprints."""

from .errors import register_error_handlers


def register_api(app):
    """Register the API blueprints and the error envelope."""
    from . import orgs

    register_error_handlers(app)
    app.register_blueprint(orgs.bp)

"""Dashboard blueprints (server-rendered pages and htmx fragments)."""


def register_web(app):
    """Register the dashboard blueprints."""
    from . import auth, orgs

    app.register_blueprint(auth.bp)
    app.register_blueprint(orgs.bp)

    @app.after_request
    def _vary_on_htmx(response):
        # Fragments and full pages share URLs; caches must keep them apart.
        response.vary.add("HX-Request")
        return response

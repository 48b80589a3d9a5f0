"""Dashboard blueprints (server-rendered pages and htmx fragments)."""


def register_web(app):
    """Register the dashboard blueprints, template filters and the `Vary: HX-Request` header."""
    from . import (
        account,
        admin,
        appointments,
        auth,
        common,
        notifications,
        orgs,
        patients,
        schedule,
        settings,
        syncs,
    )

    for module in (
        auth,
        account,
        orgs,
        syncs,
        patients,
        appointments,
        settings,
        admin,
        notifications,
        schedule,
    ):
        app.register_blueprint(module.bp)

    app.jinja_env.filters.update(
        localtime=common.localtime,
        reltime=common.reltime,
        duration=common.duration,
        isotime=common.iso,
        thousands=lambda n: f"{n or 0:,}",
        run_label=common.run_label,
        run_kind=common.run_kind_label,
        run_trigger=common.run_trigger_label,
        breakable=common.breakable,
        zone_key=common.zone_key,
        mode_label=lambda mode: common.MODE_LABELS.get(mode, mode),
    )
    app.jinja_env.globals.update(
        can=common.can, next_scheduled=schedule.next_scheduled, patient_name=common.patient_name
    )

    @app.after_request
    def _vary_on_htmx(response):
        # Fragments and full pages share URLs; caches must keep them apart.
        response.vary.add("HX-Request")
        return response

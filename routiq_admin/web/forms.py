"""Dashboard forms: organization creation and the settings page."""

from datetime import date

from flask import request
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    RadioField,
    SearchField,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, DateInput, ListWidget, PasswordInput, html_params

from ..errors import AppError
from ..extensions import db
from ..models import ORG_ID_PATTERN, PATIENTS_READ, ROLES, SYNC_SCOPE, Organization
from ..notify.targets import DEFAULT_EVENTS, EVENT_TYPES, check_url, parse_recipients
from ..sync import cadence
from .common import EARLIEST_DAY, LATEST_DAY


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def _present(form, field):
    if not field.data:
        raise ValidationError("Paste a key.")


def _no_spaces(form, field):
    if field.data and any(c.isspace() for c in field.data):
        raise ValidationError("The key has no spaces.")


def _zone(form, field):
    if field.data and not cadence.valid_zone(field.data):
        raise ValidationError(
            f"Unknown time zone {field.data!r}; pick an IANA zone such as Australia/Sydney."
        )


AUTO_ZONE = SelectChoice("", "Cliniko's business zone (automatic)")


class ZoneField(SelectField):
    """The IANA zones this machine knows; empty means Cliniko's business zone."""

    def __init__(self, label, **kwargs):
        super().__init__(label, choices=[AUTO_ZONE], validate_choice=False, **kwargs)

    def pre_validate(self, form):
        self.choices = [AUTO_ZONE, *(SelectChoice(name, name) for name in cadence.zone_names())]

    def iter_choices(self):
        self.pre_validate(None)
        return super().iter_choices()


class KeyInput(PasswordInput):
    """A write-only key box that never echoes its value, `type` first as the pages always had it."""

    def __call__(self, field, **kwargs):
        kwargs.pop("type", None)
        first = f'type="password" {html_params(id=kwargs.pop("id", field.id))}'
        for flag in ("required", "maxlength", "minlength"):
            if flag not in kwargs and getattr(field.flags, flag, None):
                kwargs[flag] = getattr(field.flags, flag)
        return Markup(f"<input {first} {html_params(name=field.name, **kwargs)}>")


class FlagField(BooleanField):
    """A checkbox that is on only for 1, on or true."""

    def process_formdata(self, valuelist):
        self.data = bool(valuelist) and valuelist[0] in ("1", "on", "true")


class NewOrgForm(FlaskForm):
    name = StringField(
        "Name", id="org-name", filters=[_strip], render_kw={"required": True, "maxlength": 200}
    )
    id = StringField(
        "Id",
        id="org-id",
        description="(optional; generated like org_2xwHiNrj…)",
        filters=[_strip],
        render_kw={"maxlength": 64},
    )
    api_key = PasswordField(
        "Cliniko API key",
        id="org-key",
        description="(optional, write-only)",
        filters=[_strip],
        validators=[_no_spaces],
        widget=KeyInput(),
        render_kw={"autocomplete": "new-password", "maxlength": 500},
    )
    time_zone = ZoneField(
        "Time zone",
        id="org-tz",
        description="(pages and schedules use it; automatic: the zone Cliniko gives the business)",
        filters=[_strip],
        validators=[_zone],
    )

    def validate_name(self, field):
        if not field.data or len(field.data) > 200:
            raise ValidationError("Give a name (up to 200 characters).")

    def validate_id(self, field):
        if not field.data:
            return
        if not ORG_ID_PATTERN.match(field.data):
            raise ValidationError("Use up to 64 letters, digits, '-' or '_'.")
        if db.session.get(Organization, field.data):
            raise ValidationError("An organization with this id exists.")


class ClinikoKeyForm(FlaskForm):
    api_key = PasswordField(
        "New key",
        id="api-key",
        filters=[_strip],
        validators=[_present, Length(max=500), _no_spaces],
        widget=KeyInput(),
        render_kw={"autocomplete": "new-password", "spellcheck": "false", "maxlength": 500},
    )


def _hhmm(form, field):
    if field.data:
        try:
            cadence.parse_hhmm(field.data)
        except ValueError:
            raise ValidationError("Give a time like 08:00.") from None


class ScheduleForm(FlaskForm):
    """The clinic's schedule: on/off, zone, interval or cron, quiet window, daily full pass."""

    sync_enabled = FlagField("Sync this organization on the schedule", id="sync-enabled")
    time_zone = ZoneField("Time zone", id="time-zone", filters=[_strip], validators=[_zone])
    kind = RadioField(
        "Runs",
        id="schedule-kind",
        choices=[SelectChoice("interval", "Every …"), SelectChoice("cron", "Cron expression")],
        default="interval",
    )
    every_minutes = IntegerField(
        "Every (minutes)",
        id="schedule-every",
        description=f"({cadence.MIN_EVERY}–{cadence.MAX_EVERY}; empty: the default)",
        validators=[Optional(), NumberRange(cadence.MIN_EVERY, cadence.MAX_EVERY)],
        render_kw={"min": cadence.MIN_EVERY, "max": cadence.MAX_EVERY, "type": "number", "step": 1},
    )
    cron = StringField(
        "Cron expression",
        id="schedule-cron",
        description="(minute hour day month weekday, in the clinic's zone)",
        filters=[_strip],
        render_kw={"maxlength": 120, "placeholder": "0 */2 * * *", "spellcheck": "false"},
    )
    quiet_start = StringField(
        "Quiet from", id="quiet-start", filters=[_strip], validators=[_hhmm], render_kw={"type": "time"}
    )
    quiet_end = StringField(
        "Quiet until", id="quiet-end", filters=[_strip], validators=[_hhmm], render_kw={"type": "time"}
    )
    quiet_weekdays_only = FlagField("Quiet on weekdays only", id="quiet-weekdays")
    full_sync_at = StringField(
        "Daily full pass at",
        id="full-sync-at",
        filters=[_strip, lambda v: v or cadence.DEFAULT_FULL_AT],
        validators=[_hhmm],
        render_kw={"type": "time"},
    )

    def validate_cron(self, field):
        if self.kind.data == "cron":
            error = cadence.cron_error(field.data)
            if error:
                raise ValidationError(error)

    def validate_quiet_end(self, field):
        if bool(self.quiet_start.data) != bool(field.data):
            raise ValidationError("Give both ends of the quiet window, or neither.")
        if field.data and field.data == self.quiet_start.data:
            raise ValidationError("The quiet window needs two different times.")

    def apply(self, org):
        """Copy the form onto the organization (the caller validated it)."""
        org.sync_enabled = self.sync_enabled.data
        org.time_zone = self.time_zone.data or None
        cron = self.kind.data == "cron"
        org.schedule_cron = self.cron.data if cron else None
        org.schedule_every_minutes = None if cron else self.every_minutes.data
        org.quiet_start = self.quiet_start.data or None
        org.quiet_end = self.quiet_end.data or None
        org.quiet_weekdays_only = bool(self.quiet_start.data) and self.quiet_weekdays_only.data
        org.full_sync_at = self.full_sync_at.data

    @classmethod
    def of(cls, org):
        """Return the form filled from the organization (no request data)."""
        form = cls(formdata=None, obj=org)
        form.kind.data = "cron" if org.schedule_cron else "interval"
        form.cron.data = org.schedule_cron or ""
        form.every_minutes.data = org.schedule_every_minutes
        form.time_zone.data = org.time_zone or ""
        return form


class InviteForm(FlaskForm):
    email = EmailField(
        "Email",
        id="member-email",
        filters=[_strip, _lower],
        validators=[Length(max=254)],
        render_kw={"required": True, "autocomplete": "off"},
    )
    role = SelectField("Role", id="member-role", choices=list(ROLES))

    def validate_email(self, field):
        if "@" not in (field.data or ""):
            raise ValidationError("Give an email address.")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLES))


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        id="token-name",
        filters=[_strip, lambda v: (v or "")[:120]],
        render_kw={"maxlength": 120, "placeholder": "e.g. reporting script"},
    )
    patients_read = FlagField("Can read patients and appointments (patients:read)", id="token-patients-read")

    def scopes(self):
        """Return the scopes the form asks for: always sync, patients:read when ticked."""
        return (SYNC_SCOPE, PATIENTS_READ) if self.patients_read.data else (SYNC_SCOPE,)


def _checked_events(form, field):
    if not field.data:
        raise ValidationError("Pick at least one event.")


def _app_rule(check):
    """Turn a notify rule's 422 into a form error next to its field."""

    def validator(form, field):
        try:
            field.data = check(field.data)
        except AppError as exc:
            raise ValidationError(exc.message) from None

    return validator


def _events_field(prefix):
    return SelectMultipleField(
        "Events",
        id=f"{prefix}-events",
        choices=list(EVENT_TYPES),
        default=list(DEFAULT_EVENTS),
        validators=[_checked_events],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


class EmailTargetForm(FlaskForm):
    recipients = StringField(
        "Email recipients",
        id="notify-recipients",
        description="(comma-separated)",
        validators=[_app_rule(parse_recipients)],
        render_kw={"maxlength": 2000, "autocomplete": "off", "placeholder": "ops@clinic.example"},
    )
    events = _events_field("notify-email")


class WebhookTargetForm(FlaskForm):
    url = StringField(
        "Webhook URL",
        id="notify-url",
        filters=[_strip],
        validators=[_app_rule(check_url)],
        render_kw={
            "maxlength": 2000,
            "autocomplete": "off",
            "placeholder": "https://hooks.example.com/routiq",
        },
    )
    events = _events_field("notify-webhook")


class FilterForm(FlaskForm):
    """A GET filter form read from the query string: no CSRF, an unknown value marks its field."""

    class Meta:
        csrf = False

    def __init__(self):
        super().__init__(formdata=request.args)


def _known(form, field):
    if field.data and field.data not in dict(field.choices):
        shown = field.data if len(field.data) <= 40 else field.data[:40] + "…"
        raise ValidationError(f"“{shown}” is not one of the choices; pick one from the list.")


class DayField(StringField):
    """A YYYY-MM-DD box whose data is a date (None when empty or unreadable)."""

    widget = DateInput()

    def process_formdata(self, valuelist):
        self.raw = (valuelist[0] if valuelist else "").strip()
        self.data = None
        if self.raw:
            try:
                self.data = date.fromisoformat(self.raw)
            except ValueError:
                self.data = None

    def _value(self):
        return self.data.isoformat() if self.data else getattr(self, "raw", "") or ""

    def pre_validate(self, form):
        if getattr(self, "raw", "") and self.data is None:
            raise ValidationError("Give a date as YYYY-MM-DD.")
        if self.data and not EARLIEST_DAY <= self.data <= LATEST_DAY:
            raise ValidationError(f"Give a date between {EARLIEST_DAY} and {LATEST_DAY}.")


def _choices(labels):
    return [("", "any"), *labels.items()]


class PatientFilterForm(FilterForm):
    q = SearchField(
        "Search name or email",
        id="patient-q",
        filters=[_strip, lambda v: (v or "")[:100]],
        render_kw={"autocomplete": "off", "maxlength": 100},
    )
    activity = SelectField("Activity", id="patient-activity", validate_choice=False, validators=[_known])
    archived = FlagField("Include archived", id="patient-archived")

    def __init__(self, labels):
        super().__init__()
        self.activity.choices = _choices(labels)


class AppointmentFilterForm(FilterForm):
    start = DayField("From", id="appt-from", name="from")
    end = DayField("To", id="appt-to", name="to")
    status = SelectField("Status", id="appt-status", validate_choice=False, validators=[_known])

    def __init__(self, labels):
        super().__init__()
        self.status.choices = _choices(labels)

    def validate_end(self, field):
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("“To” is before “From”; give a later date.")


class HistoryFilterForm(FilterForm):
    status = SelectField("Status", id="history-status", validate_choice=False, validators=[_known])
    trigger = SelectField("Trigger", id="history-trigger", validate_choice=False, validators=[_known])
    mode = SelectField("Mode", id="history-mode", validate_choice=False, validators=[_known])

    def __init__(self, statuses, triggers, modes):
        super().__init__()
        self.status.choices = _choices(statuses)
        self.trigger.choices = _choices(triggers)
        self.mode.choices = _choices(modes)

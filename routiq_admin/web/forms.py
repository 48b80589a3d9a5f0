"""Dashboard forms: organization creation and the settings page."""

from datetime import date

from flask import request
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SearchField,
    SelectField,
    StringField,
    ValidationError,
)
from wtforms.validators import Length
from wtforms.widgets import DateInput, PasswordInput, html_params

from ..extensions import db
from ..models import ORG_ID_PATTERN, ROLES, Organization
from .common import EARLIEST_DAY, LATEST_DAY, valid_zone


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
    if field.data != "UTC" and not valid_zone(field.data):
        raise ValidationError("Use an IANA name such as Australia/Sydney.")


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
    time_zone = StringField(
        "Time zone",
        id="org-tz",
        default="UTC",
        filters=[_strip, lambda v: v or "UTC"],
        validators=[_zone],
        render_kw={"maxlength": 64},
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


class SyncSettingsForm(FlaskForm):
    sync_enabled = FlagField("Sync this organization on the schedule", id="sync-enabled")
    time_zone = StringField(
        "Time zone",
        id="time-zone",
        filters=[_strip, lambda v: v or "UTC"],
        validators=[_zone],
        render_kw={"maxlength": 64, "autocomplete": "off"},
    )


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

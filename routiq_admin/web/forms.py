"""Dashboard forms: organization creation and the settings page."""

from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
)
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget, PasswordInput, html_params

from ..errors import AppError
from ..extensions import db
from ..models import ORG_ID_PATTERN, PATIENTS_READ, ROLES, SYNC_SCOPE, Organization
from ..notify.targets import DEFAULT_EVENTS, EVENT_TYPES, check_url, parse_recipients
from .common import valid_zone


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
        raise ValidationError(f"Unknown time zone {field.data!r}; use an IANA name such as Australia/Sydney.")


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

"""Dashboard forms (issue 10): a bad value comes back with its error next to its field."""

import re

from tests.factories import login, make_user


def _input(html, input_id):
    return re.search(rf"<(?:input|select) [^>]*id=\"{input_id}\"[^>]*>", html).group(0)


def test_bad_org_id_is_marked_on_its_field(client):
    make_user("boss@example.com", superuser=True)
    login(client, "boss@example.com")
    response = client.post(
        "/admin/orgs/new", data={"name": "Harbour Physio", "id": "bad id!", "api_key": "a b"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    bad_id = _input(html, "org-id")
    assert 'aria-invalid="true"' in bad_id and 'aria-describedby="org-id-error"' in bad_id
    assert 'value="bad id!"' in bad_id
    assert re.search(r'<p class="field-error" id="org-id-error">Use up to 64 letters', html)
    assert 'aria-invalid="true"' in _input(html, "org-key") and "a b" not in _input(html, "org-key")
    assert "aria-invalid" not in _input(html, "org-name") and 'value="Harbour Physio"' in html


def test_settings_forms_mark_the_field_that_failed(client):
    from tests.factories import make_org

    org = make_org()
    make_user(org=org, role="admin")
    login(client)
    settings = f"/orgs/{org.id}/settings"
    cases = [
        ("/cliniko", {"api_key": "has space-au1"}, "api-key", "The key has no spaces."),
        ("/cliniko", {"api_key": ""}, "api-key", "Paste a key."),
        (
            "/sync",
            {"sync_enabled": "1", "time_zone": "Mars/Base"},
            "time-zone",
            "Unknown time zone &#39;Mars/Base&#39;",
        ),
        ("/members", {"email": "nobody", "role": "viewer"}, "member-email", "Give an email address."),
    ]
    for path, data, input_id, message in cases:
        response = client.post(settings + path, data=data)
        html = response.get_data(as_text=True)
        assert response.status_code == 422, path
        assert 'aria-invalid="true"' in _input(html, input_id), path
        assert re.search(rf'<p class="field-error" id="{input_id}-error">{re.escape(message)}', html), path
        assert "no-store" in response.headers["Cache-Control"]
    # the bound value comes back (never the key), and nothing was saved
    assert "has space" not in client.post(settings + "/cliniko", data={"api_key": "has space"}).get_data(
        as_text=True
    )
    from routiq_admin.extensions import db

    db.session.refresh(org)
    assert org.time_zone != "Mars/Base" and org.api_key == "test-key-au1"


def test_new_token_and_invitation_post_then_redirect_and_show_once(client):
    from routiq_admin.extensions import db
    from routiq_admin.models import ApiToken
    from tests.factories import make_org

    org = make_org()
    make_user(org=org, role="admin")
    login(client)
    settings = f"/orgs/{org.id}/settings"
    created = client.post(settings + "/tokens", data={"name": "reporting"})
    assert created.status_code == 302 and created.headers["Location"].endswith(settings)
    once = client.get(settings).get_data(as_text=True)
    clear = re.search(
        r'id="new-token-value" class="mono" type="text" readonly value="(rtq_[^"]+)"', once
    ).group(1)
    again = client.get(settings).get_data(as_text=True)  # a reload shows it no more and creates nothing
    assert clear not in again and 'id="new-token-value"' not in again
    assert db.session.execute(db.select(db.func.count()).select_from(ApiToken)).scalar_one() == 1
    assert clear not in created.headers.get("Set-Cookie", "")  # the session carries it sealed
    invited = client.post(settings + "/members", data={"email": "new@example.com", "role": "viewer"})
    assert invited.status_code == 302
    assert 'id="invite-link"' in client.get(settings).get_data(as_text=True)
    assert 'id="invite-link"' not in client.get(settings).get_data(as_text=True)
    # a GET of a POST-only URL answers a styled page
    wrong = client.get(settings + "/tokens")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    assert "<!doctype html>" in wrong.get_data(
        as_text=True
    ).lower() and "Method Not Allowed" in wrong.get_data(as_text=True)

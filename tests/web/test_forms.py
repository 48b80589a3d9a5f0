"""Dashboard forms (issue 10): a bad value comes back with its error next to its field."""

import re

from tests.factories import login, make_user


def _input(html, input_id):
    return re.search(rf"<input [^>]*id=\"{input_id}\"[^>]*>", html).group(0)


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

"""Query parameters the dashboard refuses: dates out of range or unreadable, NUL in text."""

import logging

import pytest

from tests.factories import login, make_org, make_user
from tests.web.helpers import HX


@pytest.fixture
def signed_in(client):
    org = make_org()
    make_user(org=org, role="viewer")
    login(client)
    return org


@pytest.mark.parametrize(
    "query",
    ["from=0001-01-01", "to=9999-12-31", "from=9999-12-31", "to=0001-01-01", "from=garbage", "to=2026-13-40"],
)
def test_appointment_dates_out_of_range_or_garbage_answer_400(client, signed_in, query):
    # Issue 15: the page answers 400 with the field marked; an htmx fragment answers 200 (htmx
    # swaps only 2xx) with the marked form out of band.
    for headers, status in (({}, 400), (HX, 200)):
        response = client.get(f"/orgs/{signed_in.id}/appointments?{query}", headers=headers)
        assert response.status_code == status, (query, headers)
        assert 'aria-invalid="true"' in response.get_data(as_text=True), (query, headers)


def test_appointment_dates_in_range_still_work(client, signed_in):
    response = client.get(f"/orgs/{signed_in.id}/appointments?from=1990-01-01&to=2100-12-31", headers=HX)
    assert response.status_code == 200


def test_nul_in_search_or_run_id_is_refused_and_never_logged(client, signed_in, caplog):
    caplog.set_level(logging.DEBUG)
    term = "needle-term"
    for headers in ({}, HX):
        response = client.get(f"/orgs/{signed_in.id}/patients?q={term}%00", headers=headers)
        assert response.status_code == 400, headers
        assert client.get(f"/orgs/{signed_in.id}/syncs/%00", headers=headers).status_code in (400, 404)
        assert client.get(f"/orgs/{signed_in.id}/syncs/x%00y/progress").status_code in (400, 404)
    assert term not in caplog.text


def test_nul_in_the_login_form_is_refused(client, signed_in):
    assert client.post("/login", data={"email": "a\x00@example.com", "password": "x"}).status_code == 400

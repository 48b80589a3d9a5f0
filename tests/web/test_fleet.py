"""The fleet view at 1,000 organizations: states, counts, search, sort, paging, polling, scope."""

import re

import pytest

from tests.factories import login, make_token
from tests.web.fleet_data import PASSWORD, SIZE, build, expected, is_member, org_id
from tests.web.helpers import HX, polling

STATES = ("failing", "paused", "stale", "running", "never_synced")


@pytest.fixture
def fleet(app):
    build()


def ids(html):
    return re.findall(r'data-org-id="([^"]+)"', html)


def counts(html):
    return {k: int(v.replace(",", "")) for k, v in re.findall(r'data-count="(\w+)">([\d,]+)<', html)}


def every_page(client, query):
    """Return the org ids of every page of a fleet query, in order."""
    out, page = [], 1
    while True:
        html = client.get(f"/?{query}&page={page}", headers=HX).get_data(as_text=True)
        found = ids(html)
        out += found
        if 'rel="next"' not in html:
            return out
        assert len(found) == 50
        page += 1


def want(state, who):
    return {org_id(i) for i in range(SIZE) if who(i) and state in expected(i)[0]}


@pytest.mark.parametrize(
    "email, who", [("member@example.com", is_member), ("boss@example.com", lambda i: True)]
)
def test_counts_and_filters_are_right_and_scoped(client, fleet, email, who):
    login(client, email, PASSWORD)
    html = client.get("/").get_data(as_text=True)
    assert counts(html) == {"all": sum(map(who, range(SIZE))), **{s: len(want(s, who)) for s in STATES}}
    assert len(ids(html)) == 50  # one page, not a thousand rows
    for state in STATES:
        got = every_page(client, f"state={state}")
        assert len(got) == len(set(got)) and set(got) == want(state, who), state
    # counts stay the fleet's whatever the filter
    assert counts(client.get("/?state=stale", headers=HX).get_data(as_text=True)) == counts(html)


def test_a_member_never_sees_other_clinics(client, fleet):
    login(client, "member@example.com", PASSWORD)
    mine = {org_id(i) for i in range(SIZE) if is_member(i)}
    assert set(every_page(client, "sort=name")) == mine
    assert ids(client.get("/?q=org_f0456", headers=HX).get_data(as_text=True)) == []  # 456 is not theirs
    assert ids(client.get("/?q=org_f0457", headers=HX).get_data(as_text=True)) == ["org_f0457"]
    html = client.get("/?q=Clinic+012").get_data(as_text=True)
    assert ids(html) == [org_id(i) for i in range(120, 130) if is_member(i)]
    assert "Clinic 0123" not in html  # 123 is not theirs


def test_search_is_literal_and_sorts_put_trouble_first(client, fleet):
    login(client, "boss@example.com", PASSWORD)
    assert ids(client.get("/?q=100%25", headers=HX).get_data(as_text=True)) == ["org_f0007"]
    assert ids(client.get("/?q=harbour", headers=HX).get_data(as_text=True)) == ["org_f0007"]
    assert len(every_page(client, "q=%25")) == 1  # % is a character, not a wildcard
    by_failures = ids(client.get("/?sort=failures", headers=HX).get_data(as_text=True))
    assert {i for i in by_failures} <= {org_id(i) for i in range(SIZE) if expected(i)[1] == 2}
    assert "2 failures in a row" in client.get("/?sort=failures").get_data(as_text=True)
    never = {org_id(i) for i in range(SIZE) if "never_synced" in expected(i)[0]}
    assert set(ids(client.get("/?sort=last_success", headers=HX).get_data(as_text=True))) <= never
    stale = every_page(client, "state=stale&sort=last_success")
    assert stale == [org_id(i) for i in sorted((i for i in range(SIZE) if i % 10 == 2), reverse=True)]
    assert every_page(client, "state=stale") == sorted(stale)  # by name


def test_polls_only_while_a_row_on_the_page_runs(client, fleet):
    login(client, "boss@example.com", PASSWORD)
    page_one = client.get("/").get_data(as_text=True)
    assert "org_f0010" in page_one and polling(page_one)
    for query in ("state=stale", "state=failing", "q=Clinic+0123"):
        html = client.get(f"/?{query}", headers=HX).get_data(as_text=True)
        assert ids(html) and not polling(html), query


def test_fragments_paging_and_bad_parameters(client, fleet):
    login(client, "boss@example.com", PASSWORD)
    fragment = client.get("/?page=2", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="fleet">') and "<html" not in fragment
    assert ids(fragment)[0] == "org_f0051" and "Page 2 of 20" in fragment  # "Harbour…" (7) sorts last
    assert "Page 20 of 20" in client.get("/?page=999").get_data(
        as_text=True
    )  # the last page (issue 15 item 5)
    assert client.get("/?state=bogus").status_code == 400
    assert client.get("/?sort=bogus").status_code == 400
    assert client.get("/?q=" + "x" * 500).status_code == 200


def test_anonymous_and_tokens_get_no_fleet(client, fleet):
    page = client.get("/?state=failing")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    _, token = make_token(all_orgs=True)
    with_token = client.get("/?state=failing", headers={"Authorization": f"Bearer {token}"})
    assert with_token.status_code in (302, 401) and "Clinic" not in with_token.get_data(as_text=True)

"""A session cookie captured from a real browser stops working after logout (issue 11 item 3)."""

from tests.factories import make_org, make_user
from tests.web.conftest import PASSWORD, sign_in


def test_captured_browser_cookie_dies_at_logout(site, open_page):
    _, url = site
    org = make_org()
    make_user(org=org, role="viewer", password=PASSWORD)
    page = open_page(url)
    sign_in(page, "staff@example.com")
    captured = page.context.cookies()
    page.click("text=Log out")
    page.wait_for_url("**/login")
    thief = open_page(url)
    thief.context.add_cookies(captured)
    thief.goto(f"/orgs/{org.id}")
    assert "/login" in thief.url and "Log in" in thief.content()

"""Requests and fragments the dashboard tests share."""

import re

HX = {"HX-Request": "true"}


def csrf_from(html):
    """Return the CSRF token a page carries (the body's hx-headers or a hidden input)."""
    match = re.search(r'"X-CSRFToken": "([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    return match.group(1)


def polling(html):
    """Tell whether a fragment polls (hx-trigger with `every`)."""
    return bool(re.search(r'hx-trigger="every \d+(\.\d+)?s"', html))

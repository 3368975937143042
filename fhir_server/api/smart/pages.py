"""HTML of the login, approval and error pages (Jinja, autoescaped)."""

from __future__ import annotations

from flask import make_response, render_template_string

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "label{display:block;margin:.4rem 0}input[type=text],input[type=password],select"
    "{width:100%;padding:.4rem}button{margin:.8rem .4rem 0 0;padding:.5rem 1rem}"
    ".err{color:#a00}"
)
_LAYOUT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} - PHRX</title><style>{{ style }}</style></head><body>
<h1>{{ title }}</h1>{% if error %}<p class="err" id="error">{{ error }}</p>{% endif %}
{{ body|safe }}</body></html>"""

_LOGIN = """<form method="post" action="{{ action }}" id="login">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>Username <input type="text" name="username" id="username" autocomplete="username"
 required></label>
<label>Password <input type="password" name="password" id="password"
 autocomplete="current-password" required></label>
<label>One-time code (if you enabled two-factor sign-in)
 <input type="text" name="totp" id="totp" inputmode="numeric" autocomplete="one-time-code"></label>
<button type="submit" id="sign-in">Sign in</button></form>"""

_APPROVE = """<p><strong>{{ app_name }}</strong> ({{ client_id }}) asks to access this
health record node as <strong>{{ username }}</strong>. Untick anything you do not want
to share.</p>
<form method="post" action="{{ action }}" id="approve">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
{% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<fieldset><legend>Requested access</legend>
{% for scope, words in scopes %}<label><input type="checkbox" name="approved_scope"
 value="{{ scope }}" checked> {{ words }} <small>({{ scope }})</small></label>
{% endfor %}</fieldset>
{% if choose_patient %}<label>Patient
{% if patients %}<select name="patient" id="patient">{% for pid, label in patients %}
<option value="{{ pid }}">{{ label }} ({{ pid }})</option>{% endfor %}</select>
{% else %}<input type="text" name="patient" id="patient" required>{% endif %}</label>
{% elif patient %}<p>Patient: <strong>{{ patient }}</strong></p>{% endif %}
<button type="submit" name="decision" value="approve" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button></form>"""


def _page(title: str, body_template: str, status: int = 200, error: str | None = None, **kw):
    body = render_template_string(body_template, **kw)
    html = render_template_string(_LAYOUT, title=title, style=_STYLE, error=error, body=body)
    response = make_response(html, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def login_page(action: str, csrf: str, next_url: str, error: str | None = None, status=200):
    return _page("Sign in", _LOGIN, status, error, action=action, csrf=csrf, next=next_url)


def approval_page(**kw):
    return _page("Allow access?", _APPROVE, **kw)


def error_page(message: str, status: int = 400):
    return _page("Authorization error", "", status, message)

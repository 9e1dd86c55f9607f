"""Signing in and out: sessions kept on the server, attempts limited per account and address."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from .. import staff_sessions
from ..access import authenticate_user
from . import bp

SESSION_KEY = "staff_session"


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None: never `//host`, a scheme, a
    backslash (browsers read it as a slash) or a control character (browsers drop tabs and
    newlines, turning `/\\t/host` into `//host`)."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        attempt = staff_sessions.attempt(form.email.data, request.remote_addr)
        if not attempt.allowed:
            response = render_template("login.html", form=form,
                                       error="Too many attempts. Wait a minute, then try again.")
            return response, 429, {"Retry-After": str(attempt.retry_after)}
        user = authenticate_user(form.email.data, form.password.data)
        if user is None:
            return render_template("login.html", form=form, error="That email and password don't match."), 401
        staff_sessions.succeeded(attempt)
        session.clear()  # nothing from before sign-in is carried into the new session
        session[SESSION_KEY] = staff_sessions.start(user)
        login_user(user)
        return redirect(safe_next(request.args.get("next")) or url_for("web.dashboard"))
    return render_template("login.html", form=form, error=None)


@bp.post("/logout")
@login_required
def logout():
    staff_sessions.end(session.get(SESSION_KEY))
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("web.login"))

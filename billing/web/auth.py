"""Signing in and out, with attempts rate-limited across every worker."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import delete, func, select
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from ..access import authenticate_user
from ..extensions import db
from ..models import LoginFailure, utcnow
from . import bp

FAILURES_PER_MINUTE = 5


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def _keys(email: str) -> list[str]:
    return [f"ip:{request.remote_addr}", f"email:{email.strip().lower()}"]


def _too_many(keys: list[str]) -> bool:
    since = utcnow() - timedelta(minutes=1)
    counts = db.session.scalars(select(func.count()).select_from(LoginFailure)
                                .where(LoginFailure.key.in_(keys), LoginFailure.at > since).group_by(LoginFailure.key))
    return max(counts, default=0) >= FAILURES_PER_MINUTE


def _record_failure(keys: list[str]) -> None:
    db.session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - timedelta(hours=1)))
    db.session.add_all(LoginFailure(key=key) for key in keys)
    db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        keys = _keys(form.email.data)
        if _too_many(keys):
            return render_template("login.html", form=form,
                                   error="Too many attempts. Wait a minute, then try again."), 429
        user = authenticate_user(form.email.data, form.password.data)
        if user is None:
            _record_failure(keys)
            return render_template("login.html", form=form, error="That email and password don't match."), 401
        login_user(user)
        target = request.args.get("next", "")
        # Only a path on this site: never an address elsewhere.
        return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("web.dashboard"))
    return render_template("login.html", form=form, error=None)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("web.login"))

"""Admin: staff users (create, change role, deactivate) and API keys (create once-shown, revoke)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from .. import access
from ..extensions import db
from ..models import ApiKey, User
from ..staff_sessions import end_all
from . import bp, choices, requires
from .invoices import ConfirmForm

ROLE_CHOICES = [(r, r.title()) for r in access.ROLES]


def role_choices() -> list:
    return choices(ROLE_CHOICES)


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=role_choices(), default="viewer")
    password = PasswordField("Password (10 characters or more)", validators=[DataRequired(), Length(min=10, max=200)])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=role_choices())


class NewKeyForm(FlaskForm):
    name = StringField("What the key is for", validators=[DataRequired(), Length(max=100)])


def _users_page(form: NewUserForm, status: int = 200):
    users = list(db.session.scalars(select(User).order_by(User.email)))
    return render_template("users.html", users=users, form=form, role_form=RoleForm(), roles=ROLE_CHOICES,
                           confirm=ConfirmForm()), status


@bp.route("/admin/users", methods=["GET", "POST"])
@requires("admin")
def users():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = access.create_user(form.email.data, form.role.data, form.password.data)
        except access.AccessError as error:
            form.email.errors = [str(error)]
            return _users_page(form, 422)
        flash(f"{user.email} can now sign in as {user.role}.")
        return redirect(url_for("web.users"), code=303)
    return _users_page(form, 422 if form.errors else 200)


@bp.post("/admin/users/<user_id>/role")
@requires("admin")
def change_role(user_id: str):
    form = RoleForm()
    user = db.session.get(User, user_id)
    if user is not None and form.validate_on_submit():
        if user.id == current_user.id and form.role.data != "admin":
            flash("You can't take away your own admin role.", "error")
        else:
            if user.role != form.role.data:
                user.role = form.role.data
                end_all(user.id)  # signed in again, with the new role's rights
            db.session.commit()
            flash(f"{user.email} is now {user.role}.")
    return redirect(url_for("web.users"), code=303)


@bp.post("/admin/users/<user_id>/active")
@requires("admin")
def toggle_active(user_id: str):
    user = db.session.get(User, user_id)
    if user is not None and ConfirmForm().validate_on_submit():
        if user.id == current_user.id:
            flash("You can't deactivate yourself.", "error")
        else:
            user.active = not user.active
            if not user.active:
                end_all(user.id)  # out at once, on every device
            db.session.commit()
            flash(f"{user.email} is now {'active' if user.active else 'deactivated'}.")
    return redirect(url_for("web.users"), code=303)


@bp.route("/admin/api-keys", methods=["GET", "POST"])
@requires("admin")
def api_keys():
    form = NewKeyForm()
    issued = None
    if form.validate_on_submit():
        try:
            issued = access.create_api_key(form.name.data)
        except access.AccessError as error:
            form.name.errors = [str(error)]
    keys = list(db.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())))
    return render_template("api_keys.html", keys=keys, form=form, issued=issued, confirm=ConfirmForm())


@bp.route("/admin/api-keys/<key_id>/revoke", methods=["GET", "POST"])
@requires("admin")
def revoke_key(key_id: str):
    """GET asks first (clients using the key stop working at once); POST revokes."""
    form = ConfirmForm()
    if request.method == "GET":
        key = db.session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return redirect(url_for("web.api_keys"), code=303)
        return render_template("api_key_revoke.html", key=key, form=form)
    if form.validate_on_submit():
        try:
            key = access.revoke_api_key(key_id)
        except access.AccessError as error:
            flash(str(error), "error")
        else:
            flash(f"Key {key.name} revoked.")
    return redirect(url_for("web.api_keys"), code=303)

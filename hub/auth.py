"""Sign-in: which authenticator the hub uses, chosen by MLHUB_AUTHENTICATOR.

OAuth/OIDC providers are configured in :mod:`hub.oauth`. ``native`` (the default) needs no outside identity provider: people create a
hub account at ``/hub/signup`` and an admin approves them at ``/hub/authorize``
(jupyterhub-nativeauthenticator). The admins named in MLHUB_ADMIN_USERS get
their account created at first start with a generated password read from the
secrets volume, so nobody can claim an admin name by signing up first.
"""

from __future__ import annotations

import os

import bcrypt
from jupyterhub import orm
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode

from .logout import ServicesLogoutMixin
from .oauth import configure_oauth


class MlhubNativeAuthenticator(ServicesLogoutMixin, NativeAuthenticator):
    admin_password_file = Unicode(
        "",
        config=True,
        help="""File holding the first password of each admin in ``admin_users``
        who has no account yet. The account is created at startup, authorized,
        with this password; the admin changes it at /hub/change-password.
        Example: /srv/jupyterhub/secrets/admin_password. Default: '' (none:
        admins sign up like everyone else, which lets anyone claim the name).
        """,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.create_admin_accounts()

    def create_user(self, username, password, **kwargs):
        """Sign-up. A name an admin already added to the hub (admin page,
        ``mlhub-admin add``) has no password yet: whoever signs up under it first
        would take that account, admin rights included. Such a sign-up always waits
        for an admin's approval, even with MLHUB_SIGNUP=open."""
        name = self.normalize_username(username)
        added_by_admin = self.db.query(orm.User).filter_by(name=name).first() is not None
        info = super().create_user(username, password, **kwargs)
        if info is not None and added_by_admin and info.is_authorized:
            info.is_authorized = False
            self.db.commit()
            self.log.info("Sign-up for %s, a user added by an admin, waits for approval", name)
        return info

    def create_admin_accounts(self) -> list[str]:
        """Create missing accounts for configured admins; return their names."""
        if not self.admin_password_file:
            return []
        with open(self.admin_password_file) as f:
            password = f.read().strip()
        created = []
        for name in sorted(self.admin_users):
            name = self.normalize_username(name)
            if UserInfo.find(self.db, name) is None:
                hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
                self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
                created.append(name)
        if created:
            self.db.commit()
            self.log.info(
                "Created admin account(s) %s with the first password in %s",
                ", ".join(created),
                os.path.basename(self.admin_password_file),
            )
        return created


def configure_authenticator(c, settings, oidc_urls: dict) -> None:
    """Wire the authenticator chosen in settings into the hub config ``c``."""
    c.Authenticator.admin_users = set(settings.admin_users)
    if settings.authenticator != "native":
        configure_oauth(c, settings, oidc_urls)
    else:
        c.JupyterHub.authenticator_class = MlhubNativeAuthenticator
        # NativeAuthenticator's own approval is the gate: anyone it lets in is allowed.
        c.Authenticator.allow_all = True
        c.NativeAuthenticator.open_signup = settings.signup == "open"
        c.NativeAuthenticator.enable_signup = settings.signup != "closed"
        c.NativeAuthenticator.minimum_password_length = 8
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allowed_failed_logins = 5
        c.NativeAuthenticator.seconds_before_next_try = 60
        c.MlhubNativeAuthenticator.admin_password_file = os.path.join(
            settings.secrets_dir, "admin_password"
        )

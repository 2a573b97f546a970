"""Signing out of the hub signs out of the hub services too.

The hub's own logout ends the hub session and revokes the OAuth tokens that
session gave to services, but a service may keep its own session cookie
(Airflow keeps a Flask session and a JWT). So the logout page loads each
service's logout URL (same origin, hidden frames), waits for them, then goes on
to where the authenticator would have gone (the identity provider's end-session
URL, or the hub's login page).
"""

from __future__ import annotations

import html
import json

from jupyterhub.handlers.login import LogoutHandler
from traitlets import List, Unicode
from traitlets.config import LoggingConfigurable

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing out</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3rem;">
<p id="mlhub-signing-out">Signing you out of the hub and its services&hellip;</p>
{frames}
<script>
  const next = {next};
  const frames = Array.from(document.querySelectorAll("iframe"));
  let left = frames.length;
  const done = () => {{ if (--left <= 0) window.location.replace(next); }};
  frames.forEach(f => f.addEventListener("load", done));
  if (!left) window.location.replace(next);
  setTimeout(() => window.location.replace(next), 5000);
</script>
<noscript><a href="{next_html}">Continue</a></noscript>
</body></html>"""


def logout_handler_for(base: type[LogoutHandler]) -> type[LogoutHandler]:
    """A subclass of the authenticator's logout handler that also signs out of services."""

    class ServicesLogoutHandler(base):
        async def render_logout_page(self):
            urls = list(self.authenticator.service_logout_urls)
            if not urls:
                return await super().render_logout_page()
            nxt = getattr(self.authenticator, "logout_redirect_url", "") or self.settings["login_url"]
            frames = "\n".join(
                f'<iframe hidden src="{html.escape(u)}" title="sign out of a service"></iframe>'
                for u in urls
            )
            self.finish(PAGE.format(frames=frames, next=json.dumps(nxt), next_html=html.escape(nxt)))

    ServicesLogoutHandler.__name__ = f"ServicesLogout{base.__name__}"
    return ServicesLogoutHandler


class ServicesLogoutMixin(LoggingConfigurable):
    """Mixed into our authenticators: their /logout also signs out of services."""

    service_logout_urls = List(
        Unicode(),
        config=True,
        help="""URLs (on the hub's host) that sign a browser out of hub services,
        loaded by the hub's logout page. Example: ["/services/airflow/api/v2/auth/logout"].
        Default: none.""",
    )

    def get_handlers(self, app):
        handlers = [h for h in super().get_handlers(app) if h[0] != r"/logout"]
        base = getattr(self, "logout_handler", LogoutHandler)
        return [(r"/logout", logout_handler_for(base)), *handlers]

# JupyterHub configuration of the ML hub: wiring only.
# Every value comes from the environment through hub.settings (see .env.example);
# the policy lives in the hub/ package. Bad settings stop the hub here with a
# message naming the variable (exit code 2), before anything starts.
from hub.preflight import load_or_exit
from hub.wiring import configure

settings, preflight = load_or_exit()
configure(c, settings, oidc_urls=preflight.oidc_urls)  # noqa: F821 - `c` comes from JupyterHub

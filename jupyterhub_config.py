# JupyterHub configuration of the ML hub: wiring only.
# Every value comes from the environment through hub.settings (see .env.example);
# the policy lives in the hub/ package.
import os
import sys

from hub.settings import SettingsError, load_settings
from hub.wiring import configure

try:
    settings = load_settings(os.environ)
except SettingsError as e:
    print(e, file=sys.stderr)
    sys.exit(2)

configure(c, settings)  # noqa: F821 - `c` is provided by JupyterHub

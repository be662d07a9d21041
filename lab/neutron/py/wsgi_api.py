"""The Neutron API as a WSGI application for gunicorn (nlab's ctl host).

Neutron parses sys.argv with oslo.config while it boots; gunicorn's own options would be taken
for Neutron's, so it sees only the program name. The configuration files come from
OS_NEUTRON_CONFIG_DIR / OS_NEUTRON_CONFIG_FILES (set by lab/neutron/lib/ctl.sh).
"""
import sys

sys.argv = sys.argv[:1]

from neutron.wsgi.api import application  # noqa: E402,F401

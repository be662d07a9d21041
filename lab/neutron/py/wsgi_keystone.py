"""Keystone's API as a WSGI application for gunicorn (nlab's ctl host).

Keystone parses sys.argv with oslo.config while it boots, so it sees only the program name; its
configuration comes from OS_KEYSTONE_CONFIG_DIR / OS_KEYSTONE_CONFIG_FILES (lab/neutron/lib/ctl.sh).
"""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401

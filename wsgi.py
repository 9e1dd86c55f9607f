"""The WSGI application for gunicorn (`wsgi:app`) and the `flask --app wsgi` CLI."""

import sys

from billing import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"billing: configuration error: {error}")

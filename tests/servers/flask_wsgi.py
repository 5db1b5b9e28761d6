"""The Flask app of tests/web/flask_support.py as a module attribute, for uWSGI's --module
(its arguments from the FLASK_TEST_* variables)."""

from tests.web.flask_support import create_app

application = create_app()

"""The WSGI application gunicorn serves in the end-to-end Django tests."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.web.django_settings")
application = get_wsgi_application()

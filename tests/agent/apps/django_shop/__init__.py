"""A minimal Django project for tests/agent/test_django_e2e.py (settings, urls, views, wsgi)."""

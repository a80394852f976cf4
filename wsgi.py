"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from chatbot import create_app

app = create_app()

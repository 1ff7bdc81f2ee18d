"""remission-cds: a CDS Hooks 2.0 service for cancer response and remission (HTTP, protocol, cards, config, CLI)."""
from __future__ import annotations


def create_app(config=None):
    """Flask app factory (``gunicorn 'cds_service:create_app()'``)."""
    from cds_service import logging_setup  # noqa: F401 - first: imports structlog without console extras
    from cds_service.app import create_app as _create

    return _create(config)


__all__ = ["create_app"]

"""REST planner server: ``create_app(load_planner)`` / ``planner_app(model)``; run with ``tinyagent-ft serve``."""
from .app import create_app, planner_app

__all__ = ["create_app", "planner_app"]

"""HTTP routers of the assignment service: thin, they parse and call a command or a view.

Refusals (`guichet_runtime.refusals.Refused`) become HTTP answers in the app factory.
"""

from assignment.api.admin import admin_router
from assignment.api.files import router
from assignment.api.views import views_router

__all__ = ["admin_router", "router", "views_router"]

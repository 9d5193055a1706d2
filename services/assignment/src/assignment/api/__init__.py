"""HTTP routers of the assignment service: thin, they parse and call a command or a view.

Each route declares its access policy (guichet_runtime.policy) with the facts of `access`,
from assignment's own tables; the public card only declares it (no identity needed).

Refusals (`guichet_runtime.refusals.Refused`) become HTTP answers in the app factory.
"""

from assignment.api.admin import admin_router
from assignment.api.appointments import appointments_router
from assignment.api.files import router
from assignment.api.gdpr import gdpr_router
from assignment.api.views import views_router

__all__ = ["admin_router", "appointments_router", "gdpr_router", "router", "views_router"]

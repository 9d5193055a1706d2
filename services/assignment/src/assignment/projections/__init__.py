"""Event handlers of the assignment service, one per consumed event: `on_<event>(event, uow)`."""

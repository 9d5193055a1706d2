"""Use cases of the assignment service called by its HTTP routes and its housekeeping worker."""

"""The one error the CLI reports to the operator as a plain message (exit status 1)."""


class AdminError(Exception):
    """Something the operator must fix or know; its message says what, without a traceback."""

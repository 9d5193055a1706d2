"""Intake's read side: `files` (the citizen's file, the agents' record, the référent's
messages and thanks), `indicators` (the published indicators and their CSV) and `access`
(the facts the access policies decide on)."""

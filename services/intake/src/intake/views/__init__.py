"""Intake's read side: `files` (the citizen's file, the agents' record, the référent's
messages and thanks) and `indicators` (the published indicators and their CSV)."""

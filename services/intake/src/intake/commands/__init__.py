"""Intake's use cases, called by the HTTP routes: each takes explicit inputs and a unit of
work, and raises `Refused` (kind and French message) when the rules say no.

- `files`: open a file, change the citizen's contact preferences;
- `citizen`: ask for another référent, answer the survey, thank the référent;
- `access`: one-time access codes;
- `documents`: the supporting documents an agency asked for;
- `messages`: the référent's messages to the citizen;
- `idempotency`: the one Idempotency-Key mechanism both POST commands use.
"""

"""Agency codes. The set of agencies is open: an agency is named by a code that follows
`AGENCY_CODE`; which agencies exist, their French names and the life events that reach
them come from the catalogue (`shared_models.catalogue`) and the adapters' declarations."""

import re
from typing import Annotated

from pydantic import StringConstraints

#: What an agency code looks like (it goes into topic and service names): caf, dgfip, ants…
AGENCY_CODE = re.compile(r"^[a-z][a-z0-9_]{1,29}$")

#: Code of a partner administration, as used in topics and events.
AgencyCode = Annotated[str, StringConstraints(pattern=AGENCY_CODE.pattern)]

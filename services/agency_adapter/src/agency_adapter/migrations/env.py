from guichet_runtime.migrations import run_env
from agency_adapter.tables import metadata

run_env(metadata)

from guichet_runtime.migrations import run_env
from assignment.tables import metadata

run_env(metadata)

from guichet_runtime.migrations import run_env
from intake.tables import metadata

run_env(metadata)

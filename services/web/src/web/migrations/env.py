from guichet_runtime.migrations import run_env
from web.tables import metadata

run_env(metadata)

from adapter_sdk.tables import metadata
from guichet_runtime.migrations import run_env

run_env(metadata)

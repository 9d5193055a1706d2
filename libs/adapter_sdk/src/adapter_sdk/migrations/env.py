from guichet_runtime.migrations import run_env
from adapter_sdk.tables import metadata

run_env(metadata)

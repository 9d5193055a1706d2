"""Console entry points: `guichet-adapter <name>` runs an installed adapter,
`guichet-adapter-kit <name> --sandbox URL` checks one against its agency's sandbox."""

from __future__ import annotations

import asyncio

import typer

from adapter_sdk import discovery
from adapter_sdk.app import serve
from adapter_sdk.kit import run_kit

kit_app = typer.Typer(add_completion=False, help=__doc__)
run_app = typer.Typer(add_completion=False, help=__doc__)


@kit_app.command()
def kit(
    adapter: str = typer.Argument(..., help="entry-point name (caf, dgfip…) or module:Class"),
    sandbox: str = typer.Option(..., "--sandbox", help="base URL of the agency's sandbox system"),
    callback_timeout: float = typer.Option(
        15.0, help="seconds to wait for an asynchronous agency's callback"
    ),
) -> None:
    """Check an adapter against its agency's sandbox; exit 1 if any rule is broken."""
    try:
        cls = discovery.load(adapter)
    except (discovery.AdapterNotFound, ImportError, AttributeError) as exc:
        typer.echo(f"Adaptateur introuvable : {exc}", err=True)
        raise typer.Exit(2) from None
    report = asyncio.run(run_kit(cls, sandbox, callback_timeout=callback_timeout))
    typer.echo(report.render())
    raise typer.Exit(0 if report.ok else 1)


@run_app.command()
def run(
    adapter: str = typer.Argument(..., help="entry-point name (caf, dgfip…) or module:Class"),
    host: str | None = typer.Option(None, help="interface to listen on (HTTP_HOST)"),
    port: int | None = typer.Option(None, help="HTTP port (HTTP_PORT)"),
) -> None:
    """Run an installed adapter (settings from the environment)."""
    argv = [*(["--host", host] if host else []), *(["--port", str(port)] if port else [])]
    serve(discovery.load(adapter), argv)


def kit_main() -> None:
    kit_app(prog_name="guichet-adapter-kit")


def run_main() -> None:
    run_app(prog_name="guichet-adapter")


if __name__ == "__main__":
    kit_main()

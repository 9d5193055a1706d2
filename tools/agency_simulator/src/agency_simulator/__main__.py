"""Run the agency simulator: ``python -m agency_simulator --host 127.0.0.1 --port 8100``."""

from __future__ import annotations

import argparse
import os

import uvicorn

from agency_simulator.app import AGENCIES, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="agency-simulator",
        description=(
            "Deterministic HTTP simulator of the CAF, DGFiP, France Travail and CPAM systems."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="TCP port (default 8100)")
    parser.add_argument(
        "--agency",
        action="append",
        choices=["caf", "dgfip", "france_travail", "cpam", "ants"],
        help="serve only this agency's system (repeatable; default: all four)",
    )
    parser.add_argument(
        "--callback-secret",
        default=os.environ.get("CALLBACK_SECRET", ""),
        help="secret France Travail signs its callbacks with, shared with its adapter "
        "(default: CALLBACK_SECRET; empty: callbacks unsigned)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn log level (default info)",
    )
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(tuple(args.agency) if args.agency else AGENCIES, args.callback_secret),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Lean, as the agencies share the box with what they serve: libuv's loop, HTTP
        # parsed in C (httptools) rather than by h11.
        loop="uvloop",
        http="httptools",
        # Idle connections outlive the adapters' (httpx's 5 s), so the adapter closes first
        # (see guichet_runtime.service.KEEP_ALIVE_SECONDS): a real agency's server may not,
        # and its call is then retried under the same request id.
        timeout_keep_alive=65,
    )


if __name__ == "__main__":
    main()

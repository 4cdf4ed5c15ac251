"""Command line entry: ``python -m pos_demo.simulator --port 8765 --data-dir demo-data``.

Runs the simulator until SIGINT/SIGTERM so it can be used by hand or as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import SimulatorConfig
from .server import start_simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Define and parse the CLI options."""
    parser = argparse.ArgumentParser(
        prog="python -m pos_demo.simulator", description="Run the DemoPOS simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="state dir")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("DEMOPOS_API_KEY"),
        help="require this X-Api-Key (default: $DEMOPOS_API_KEY; unset = no auth)",
    )
    parser.add_argument("--stage-seconds", type=float, default=3.0, help="seconds per stage")
    parser.add_argument("--webhook-url", default=None, help="POST events to this URL")
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("DEMOPOS_WEBHOOK_SECRET"),
        help="HMAC secret for webhook signatures (default: $DEMOPOS_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--submit-delay", type=float, default=0.0, help="delay before answering POST /orders"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Start the simulator and block until a termination signal arrives."""
    config = SimulatorConfig(
        data_dir=args.data_dir,
        api_key=args.api_key,
        stage_seconds=args.stage_seconds,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        submit_delay_seconds=args.submit_delay,
    )
    simulator = await start_simulator(config, host=args.host, port=args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # e.g. Windows
            loop.add_signal_handler(sig, stop.set)
    print(f"DemoPOS simulator listening on {simulator.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.close()


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

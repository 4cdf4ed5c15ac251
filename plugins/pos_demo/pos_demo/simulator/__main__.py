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

from posintegrator.testing.faults import FaultPlan

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
    faults = parser.add_argument_group("fault injection (probabilities 0..1)")
    for name, text in (
        ("fail-5xx", "answer 503 without doing anything"),
        ("timeout", "hold the request until the client gives up, doing nothing"),
        ("commit-then-drop", "create the order, then cut the connection"),
        ("commit-then-5xx", "create the order, then answer 500"),
        ("slow", "answer late (see --slow-seconds)"),
    ):
        faults.add_argument(f"--{name}", type=float, default=0.0, help=text)
    faults.add_argument("--slow-seconds", type=float, default=1.0)
    faults.add_argument("--webhook-duplicates", type=float, default=0.0, help="resend a webhook")
    faults.add_argument("--webhook-reorder", type=float, default=0.0, help="swap two webhooks")
    faults.add_argument("--fault-seed", type=int, default=None, help="repeatable dice")
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
        faults=FaultPlan(
            fail_5xx=args.fail_5xx,
            timeout=args.timeout,
            commit_then_drop=args.commit_then_drop,
            commit_then_5xx=args.commit_then_5xx,
            slow=args.slow,
            slow_seconds=args.slow_seconds,
            paths=("/orders",),
        ),
        webhook_duplicate_rate=args.webhook_duplicates,
        webhook_reorder_rate=args.webhook_reorder,
        fault_seed=args.fault_seed,
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

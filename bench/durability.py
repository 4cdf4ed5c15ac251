"""What an acknowledged order costs under SQLite synchronous=NORMAL versus FULL.

Each sample accepts a batch of orders into a fresh SQLite store in WAL mode, one commit per
order as the API does, sequentially (latency of one acknowledgement) and 32 at a time (the
throughput a busy host sees). The baseline is the same work with ``synchronous=OFF`` (no fsync
at all), measured in the same run; NORMAL and FULL are reported as ratios to it.

    python bench/durability.py [--orders N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Measure, clock, table, write_results

from posintegrator.model import Order
from posintegrator.orders.intake import idempotency_key, order_content_hash
from posintegrator.store import SQLiteStore

LEVELS = ("OFF", "NORMAL", "FULL")


def make_order(index: int) -> Order:
    return Order.model_validate(
        {
            "id": f"bench-{index}",
            "location": "downtown",
            "type": "TAKE_AWAY",
            "currency": "EUR",
            "lines": [
                {"product_id": "fries", "variant_id": "medium", "quantity": 1, "unit_price": 320}
            ],
            "total": 320,
            "payments": [{"mode": "PREPAID", "amount": 320}],
        }
    )


async def accept_all(level: str, orders: list[Order], concurrency: int) -> float:
    """Seconds to accept ``orders`` into a fresh store at ``level``."""
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "bench.db", synchronous=level)  # type: ignore[arg-type]
        await store.open()
        semaphore = asyncio.Semaphore(concurrency)

        async def accept(order: Order) -> None:
            async with semaphore:
                await store.accept_order(
                    order, "demo", order_content_hash(order), idempotency_key(order.id)
                )

        started = clock()
        await asyncio.gather(*(accept(o) for o in orders))
        elapsed = clock() - started
        await store.close()
        return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    args = parser.parse_args()
    count, repeats = (20, 1) if args.quick else (args.orders, args.repeat)
    orders = [make_order(i) for i in range(count)]
    results: dict[str, dict[str, Measure]] = {}
    for concurrency in (1, 32):
        per_level = {level: Measure(f"{level} x{concurrency}", "orders/s") for level in LEVELS}
        for _ in range(repeats):
            for level in LEVELS:  # interleaved, so drift on a shared machine hits all alike
                seconds = await accept_all(level, orders, concurrency)
                per_level[level].samples.append(count / seconds)
        results[f"concurrency_{concurrency}"] = per_level
    rows = [["concurrency", "synchronous", "orders/s (median)", "spread", "ratio to OFF"]]
    for key, per_level in results.items():
        base = per_level["OFF"].median
        for level, measure in per_level.items():
            rows.append(
                [
                    key.split("_")[1],
                    level,
                    f"{measure.median:,.0f}",
                    f"±{measure.spread:.0%}",
                    f"{measure.median / base:.2f}",
                ]
            )
    print(table(rows))
    path = write_results(
        "durability",
        {
            "orders": count,
            "repeat": repeats,
            "results": {
                key: {level: m.summary() for level, m in per_level.items()}
                for key, per_level in results.items()
            },
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    asyncio.run(main())

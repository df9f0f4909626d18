"""A durable order workflow: validate, reserve stock, charge, ship; every step recorded.

    python examples/order_workflow.py                   # a store in a temporary directory
    python examples/order_workflow.py --store sqlite:///orders.db

The payment service is down for the first run: the workflow stops at ``charge_payment``,
FAILED, with its first two steps recorded in the embedded SQLite store. The service comes
back and the run is resumed: the recorded steps are replayed from the store (their functions
are not called again) and only ``charge_payment`` and ``ship`` run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

Order = dict[str, Any]

PRICES = {"espresso-beans": 12.5, "grinder": 89.0, "filter-papers": 4.25}


# -- the plain Python that does the work ----------------------------------------------------


class PaymentService:
    """A stand-in for a payment provider that can be down."""

    def __init__(self) -> None:
        self.up = True
        self.charged: list[str] = []

    def charge(self, order_id: str, amount: float) -> str:
        if not self.up:
            raise ConnectionError("payment service unavailable")
        self.charged.append(order_id)
        return f"PAY-{order_id}-{amount:.2f}"


PAYMENTS = PaymentService()
CALLS: list[str] = []
"""Which step functions ran, in order (to show what a resume does not call again)."""


def validate(order: Order) -> Order:
    """Step 1: refuse unknown items and empty orders; price the lines."""
    CALLS.append("validate")
    if not order["lines"]:
        raise ValueError(f"order {order['id']} has no lines")
    unknown = [item for item, _ in order["lines"] if item not in PRICES]
    if unknown:
        raise ValueError(f"order {order['id']}: unknown items {unknown}")
    total = sum(PRICES[item] * qty for item, qty in order["lines"])
    return {**order, "total": round(total, 2)}


def reserve_stock(order: Order) -> Order:
    """Step 2: reserve the items (here: a reservation number)."""
    CALLS.append("reserve_stock")
    return {**order, "reservation": f"RES-{order['id']}"}


def charge_payment(order: Order) -> Order:
    """Step 3: charge the customer; fails while the payment service is down."""
    CALLS.append("charge_payment")
    return {**order, "payment": PAYMENTS.charge(order["id"], order["total"])}


def ship(order: Order) -> Order:
    """Step 4: hand the parcel to the carrier."""
    CALLS.append("ship")
    return {**order, "tracking": f"TRK-{order['id']}"}


# -- the wiring -----------------------------------------------------------------------------

import riverbed as rb  # noqa: E402 - kept apart on purpose: nothing above needs riverbed


def build() -> rb.Flow:
    """input -> validate -> reserve_stock -> charge_payment -> ship -> output."""
    flow = rb.Flow("order-workflow")
    (
        flow.input()
        .map(validate)
        .map(reserve_stock)
        .map(charge_payment, retry=rb.Retry(attempts=2, backoff=0.01))
        .map(ship)
        .output()
    )
    return flow


flow = build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.store or f"sqlite:///{Path(scratch) / 'orders.db'}"
        order = {"id": "17", "lines": [("espresso-beans", 2), ("filter-papers", 3)]}
        with rb.open_store(url) as store:
            PAYMENTS.up = False
            failed = rb.run(flow, order, store=store)
            assert failed.error is not None
            print(
                f"order {order['id']}: {failed.status.value.upper()} at {failed.error.stage}: "
                f"{failed.error.error_type}: {failed.error.message}"
            )
            print(f"  recorded steps: {', '.join(s.stage for s in store.steps(failed.run_id))}")
            PAYMENTS.up = True
            CALLS.clear()
            print("payment service is back; resuming the run")
            done = rb.run(flow, store=store, resume=failed.run_id)
            for step in done.steps:
                how = "replayed from the store" if step.stage in done.replayed else "ran"
                print(f"  {step.seq}. {step.stage:<15} {how}")
            output = done.output
            print(
                f"order {order['id']}: {done.status.value.upper()}, total {output['total']:.2f}, "
                f"{output['payment']}, shipped as {output['tracking']} "
                f"(attempt {store.get_run(done.run_id).attempt})"
            )


if __name__ == "__main__":
    main()

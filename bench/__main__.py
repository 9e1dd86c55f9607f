"""Run the benchmarks named on the command line, or all of them, and print their figures."""

from __future__ import annotations

import sys

from . import booking, compare, credit_notes, http_quotes, invoices, messages, pricing, profile, soak, staff

BENCHMARKS = {"pricing": pricing.main, "http_quotes": http_quotes.main, "invoices": invoices.main,
              "booking": booking.main, "staff": staff.main, "credit_notes": credit_notes.main,
              "messages": messages.main, "profile": profile.main, "compare": compare.main, "soak": soak.main}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        print(f"== {name}")
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

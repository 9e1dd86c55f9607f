"""localstripe, the stateful fake Stripe server, as the tests and `make run` use it.

`python -m devtools.localstripe_dev --port 8420 --store /tmp/x.pickle` serves on 127.0.0.1
only (localstripe's own start() binds every interface), keeps its pickle where it is told
(localstripe hard-codes /tmp/localstripe.pickle and rewrites it on every change), and adds a
development extension for what the double lacks, each piece documented where it is:

- POST /_dev/payment_intents/{id}/confirm_card: confirm a PaymentIntent with the card typed
  into the page. localstripe's own confirm refuses `payment_method=` (500, "Not implemented")
  and its Stripe.js double never sends the card; a decline also leaves the intent unable to
  take a retry, so a failed charge is cleared first. Authorised like Stripe.js calls are: by
  the publishable key and the intent's client secret.
- the served Stripe.js gets localstripe_dev.js appended, so `confirmCardPayment(secret,
  {payment_method: {card}})` goes through that route (see the file).
"""

from __future__ import annotations

import argparse
import re
import json
import pickle
from pathlib import Path

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

_HERE = Path(__file__).resolve().parent


def redirect_store(path: Path | None) -> None:
    """Pickle localstripe's store to `path` (None: keep it in memory only)."""

    def dump(self: resources.Store) -> None:
        if path is not None:
            with open(path, "wb") as f:
                pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self: resources.Store) -> None:
        if path is not None and path.exists():
            with open(path, "rb") as f:
                self.clear()
                self.update(pickle.load(f))

    resources.Store.dump_to_disk = dump
    resources.Store.try_load_from_disk = load


async def confirm_card(request: web.Request, intent_id: str) -> web.Response:
    data = json.loads(await request.text() or "{}")
    key, secret, card = data.get("key"), data.get("client_secret"), data.get("card")
    if not (isinstance(key, str) and key.startswith("pk_")):
        raise UserError(401, "Unauthorized")
    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if secret != intent.client_secret:
        raise UserError(401, "Unauthorized")
    if not isinstance(card, dict):
        raise UserError(400, "Bad request")
    if intent.status == "requires_payment_method" and intent.latest_charge is not None:
        intent.latest_charge = None  # a declined attempt: let the patient try another card
    method = resources.PaymentMethod(type="card", card={k: card.get(k) for k in ("number", "exp_month", "exp_year", "cvc")})
    intent.payment_method = method.id
    intent._authentication_failed = False
    # Raises UserError(402, card_declined) for a declining card, as Stripe answers.
    intent._confirm(on_failure_now=intent._report_failure)
    resources.store.dump_to_disk()
    return server.json_response(intent._export())


_CONFIRM_CARD = re.compile(r"^/_dev/payment_intents/(pi_\w+)/confirm_card$")


@web.middleware
async def development_extension(request: web.Request, handler):
    """Serves the extension ahead of localstripe's auth middleware, which would want a secret
    key: the browser calls these as Stripe.js would, with the publishable key."""
    if request.path == "/js.stripe.com/v3/":
        source = (Path(resources.__file__).parent / "localstripe-v3.js").read_text()
        extension = (_HERE / "localstripe_dev.js").read_text()
        return web.Response(text=source + "\n" + extension, content_type="application/javascript")
    match = _CONFIRM_CARD.match(request.path)
    if match and request.method == "POST":
        return await confirm_card(request, match.group(1))
    return await handler(request)


def build_app(store: Path | None) -> web.Application:
    redirect_store(store)
    resources.store.try_load_from_disk()
    app = server.app
    app.middlewares.insert(1, development_extension)  # inside error handling, before auth
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", type=Path, default=None, help="pickle file (default: memory only)")
    args = parser.parse_args()
    web.run_app(build_app(args.store), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

"""Price list versions: immutable, dated, numbered in order of creation."""

from __future__ import annotations

from flask import g
from flask.views import MethodView

from ..clock import today_at_clinic
from .. import price_lists
from ..errors import NotFound
from .auth import api_blueprint
from .problems import problem_response
from .schemas import (
    CurrentPriceListQuerySchema,
    PaginationSchema,
    PriceListInputSchema,
    PriceListPageSchema,
    PriceListSchema,
)

blp = api_blueprint("price_lists", __name__, "Price list versions")


@blp.route("/price-lists")
class PriceLists(MethodView):
    @blp.arguments(PaginationSchema(), location="query")
    @blp.response(200, PriceListPageSchema)
    def get(self, args):
        """List price list versions, newest first."""
        rows, has_more = price_lists.list_price_lists(args["limit"], args["starting_after"])
        return {"data": [price_lists.price_list_view(r) for r in rows], "has_more": has_more}

    @blp.arguments(PriceListInputSchema())
    @blp.response(201, PriceListSchema)
    def post(self, data):
        """Create the next price list version. Versions can't be changed afterwards."""
        document = PriceListInputSchema().dump(data)
        row = price_lists.create_price_list(document, g.actor)
        return price_lists.price_list_view(row)


@blp.route("/price-lists/current")
class CurrentPriceList(MethodView):
    @blp.arguments(CurrentPriceListQuerySchema(), location="query")
    @blp.response(200, PriceListSchema)
    @blp.doc(responses={"404": problem_response("No price list is in effect on that date.")})
    def get(self, args):
        """The version in effect on `date` (default today)."""
        on = args["date"] or today_at_clinic()
        row = price_lists.version_in_effect(on)
        if row is None:
            raise NotFound(f"No price list is in effect on {on.isoformat()}.")
        return price_lists.price_list_view(row)


@blp.route("/price-lists/<price_list_id>")
class PriceListById(MethodView):
    @blp.response(200, PriceListSchema)
    @blp.doc(responses={"404": problem_response("No price list version has this id.")})
    def get(self, price_list_id):
        """One price list version."""
        return price_lists.price_list_view(price_lists.get_price_list(price_list_id))

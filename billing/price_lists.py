"""Use cases for price list versions: create (immutable), look up, and find the one in effect."""

from __future__ import annotations

from datetime import date
from threading import Lock
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError

from .errors import NotFound
from .extensions import db
from .ids import new_id
from .clock import today_at_clinic
from .models import PriceListVersion
from .pricing import PriceList, PriceListInvalid, price_list_from_document
from .recent import MISSING, Recent

# Versions never change once written, so a parsed one can be kept for the life of the process.
_parsed: dict[str, PriceList] = {}
_parsed_lock = Lock()


def parsed(row: PriceListVersion) -> PriceList:
    price_list = _parsed.get(row.id)
    if price_list is None:
        price_list = price_list_from_document(row.document, id=row.id, version=row.version)
        with _parsed_lock:
            if len(_parsed) > 1000:
                _parsed.clear()
            _parsed[row.id] = price_list
    return price_list


def create_price_list(document: dict[str, Any], actor: str) -> PriceListVersion:
    """Store a new version after checking every rule; versions number 1, 2, 3… in creation order."""
    price_list_from_document(document)  # raises PriceListInvalid, nothing stored
    effective_from = date.fromisoformat(document["effective_from"])
    today = today_at_clinic()
    if effective_from < today and db.session.scalar(select(PriceListVersion.id).limit(1)) is not None:
        # Drafts in that range would be silently re-priced; a correction for the past is a credit note.
        raise PriceListInvalid({"effective_from": [
            f"A new version can't take effect before today ({today.isoformat()}): drafts already priced "
            "would change. Correct an issued invoice with a credit note instead."]})
    for _ in range(5):
        version = (db.session.scalar(select(func.max(PriceListVersion.version))) or 0) + 1
        row = PriceListVersion(
            id=new_id("pl"),
            version=version,
            effective_from=effective_from,
            currency=document["currency"],
            document=document,
            created_by=actor,
        )
        db.session.add(row)
        try:
            db.session.commit()
            _recent_in_effect.clear()
            return row
        except IntegrityError:
            # Another admin took this version number a moment ago: take the next one.
            db.session.rollback()
    raise RuntimeError("could not allocate a price list version")


def get_price_list(price_list_id: str) -> PriceListVersion:
    row = db.session.get(PriceListVersion, price_list_id)
    if row is None:
        raise NotFound(f"No price list {price_list_id}.")
    return row


def list_price_lists(limit: int, starting_after: str | None) -> tuple[list[PriceListVersion], bool]:
    query = select(PriceListVersion).order_by(PriceListVersion.version.desc())
    if starting_after:
        query = query.where(PriceListVersion.version < get_price_list(starting_after).version)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def version_in_effect(on: date) -> PriceListVersion | None:
    """The newest version whose effective_from is on or before `on`."""
    found = _id_in_effect(on)
    return db.session.get(PriceListVersion, found) if found else None


def price_list_in_effect(on: date) -> PriceList | None:
    found = _id_in_effect(on)
    if found is None:
        return None
    return _parsed.get(found) or parsed(get_price_list(found))


def _id_in_effect(on: date) -> str | None:
    found = _recent_in_effect.get(on)
    if found is MISSING:
        found = _recent_in_effect.put(on, db.session.connection().execute(_ID_IN_EFFECT, {"on": on}).scalar())
    return found  # type: ignore[return-value]


# Every quote and invoice asks which version is in effect: remember answers for a few seconds.
# A version created in this process applies at once; one created elsewhere within
# IN_EFFECT_MEMORY_SECONDS. The query itself is built once and runs through Core.
IN_EFFECT_MEMORY_SECONDS = 5
_recent_in_effect: Recent[str | None] = Recent(IN_EFFECT_MEMORY_SECONDS)
_ID_IN_EFFECT = (
    select(PriceListVersion.id)
    .where(PriceListVersion.effective_from <= bindparam("on"))
    .order_by(PriceListVersion.effective_from.desc(), PriceListVersion.version.desc())
    .limit(1)
)


def price_list_view(row: PriceListVersion) -> dict[str, Any]:
    return {**row.document, "id": row.id, "version": row.version, "created_at": row.created_at}

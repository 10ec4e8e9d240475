"""Per-record validation: a bad record is dropped and counted, the rest of the request is kept."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from otlp2parquet.convert._arrays import valid_id_length
from otlp2parquet.convert._common import ConversionResult, Nesting


class Validation:
    """Collects, per item, the first reason it is rejected; the server reports them in `partial_success`."""

    def __init__(self, items: int, noun: str) -> None:
        self.valid = np.ones(items, dtype=bool)
        self.noun = noun
        self.reasons: Counter[str] = Counter()

    def reject(self, bad_rows: np.ndarray, reason: str) -> None:
        """`bad_rows`: item indices (may repeat) that fail for `reason`."""
        rows = np.unique(bad_rows)
        rows = rows[self.valid[rows]]
        if len(rows):
            self.valid[rows] = False
            self.reasons[f"{self.noun}s with {reason}"] += len(rows)

    def id_length(self, ids: pa.Array, width: int, reason: str, owner: pa.Array | None = None) -> None:
        """Reject items whose id (or, with `owner`, whose child's id) has a length other than 0 or `width`."""
        bad = np.flatnonzero(~valid_id_length(ids, width))
        if len(bad):
            self.reject(bad if owner is None else owner.to_numpy()[bad], reason)

    def mask(self) -> pa.Array | None:
        """The keep-mask for `Array.filter`, or None when every item is valid."""
        return None if self.valid.all() else pa.array(self.valid)

    def keep_valid(self, nesting: Nesting) -> Nesting:
        mask = self.mask()
        if mask is None:
            return nesting
        return Nesting(nesting.resources, nesting.scopes, nesting.items.filter(mask),
                       nesting.item_scope.filter(mask), nesting.item_resource.filter(mask))

    def result(self, repaired_strings: int = 0) -> ConversionResult:
        result = ConversionResult(accepted=int(self.valid.sum()), rejected=int((~self.valid).sum()),
                                  reasons=self.reasons)
        result.note_repaired(repaired_strings)
        return result

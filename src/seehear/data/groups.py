"""Which group each example belongs to, by a column name: a manifest column (Record.extra), a Kaldi dir's
speaker facts (spk2gender, spk2age: the columns gender and age), `group` / `speaker` (Record.group: utt2spk, a
speaker column, a (?P<speaker>...) name pattern) or `label`. Shared by fairness reports (`--fairness-by`) and
group-balanced sampling (`train.group_by`), so both read the same groups off the same data."""
from __future__ import annotations

from collections import Counter

from seehear.data.records import Record
from seehear.errors import DataError


def column_values(records: list[Record], column: str, option: str = "--fairness-by") -> list:
    """Each record's value of `column` (None where a record has none); a column that no record has is a one-line
    DataError naming `option` and the columns there are."""
    def value(r: Record):
        if column in r.extra:
            return r.extra[column]
        if column in ("group", "speaker"):
            return r.group
        return r.label if column == "label" else None

    vals = [value(r) for r in records]
    if all(v in (None, "") for v in vals):
        raise DataError(f"{option} {column!r}: no example has that column; columns here: {available(records)}")
    return vals


def available(records: list[Record]) -> str:
    cols = sorted({k for r in records for k in r.extra} | ({"group"} if any(r.group for r in records) else set()))
    return ", ".join(cols) or "none (use a manifest with a group column)"


def group_names(values) -> list[str]:
    """Values as group names: a missing value is the group '(none)'."""
    return ["(none)" if v is None or v == "" else str(v) for v in values]


def group_counts(values) -> dict[str, int]:
    return dict(sorted(Counter(group_names(values)).items()))


__all__ = ["column_values", "available", "group_names", "group_counts"]

"""A model's classes meet a data set's categories: (id, name) pairs compared, matched by name when only the
ids differ, by id (with a warning) when the names differ.

A model knows each class by its contiguous label (0 = background), the category id it reports (its training
set's) and a name. Evaluating it on a set that numbers the same categories differently (another export of
the same labels) must score each detection against the category of the same name, or AP is silently wrong.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger("trainer.data")


@dataclass(frozen=True)
class CategoryMap:
    """Index = the model's label (0 = background, never a category).

    model_ids[label]: the category id the model reports; names[label]: the model's class name;
    dataset_ids[label]: the id of the same category in the data set, None where it has none.
    """

    model_ids: tuple[int, ...]
    names: tuple[str, ...]
    dataset_ids: tuple[int | None, ...]

    @property
    def label_of(self) -> dict[int, int]:
        """Data set category id -> the model's label, for the categories the model knows."""
        return {d: label for label, d in enumerate(self.dataset_ids) if label > 0 and d is not None}

    @property
    def to_dataset(self) -> dict[int, int]:
        """The model's reported category id -> the data set's id of that category (results are remapped)."""
        return {self.model_ids[label]: d for label, d in enumerate(self.dataset_ids) if label > 0 and d is not None}


def identity(categories: dict[int, str]) -> CategoryMap:
    """The classes of a model trained on this set: labels 1..K in category id order."""
    ids = (0, *sorted(categories))
    names = ("__background__", *(categories[c] for c in ids[1:]))
    return CategoryMap(ids, names, ids)


def match(
    model_ids: tuple[int, ...], model_names: tuple[str, ...], categories: dict[int, str], source: str
) -> CategoryMap:
    """Match a model's classes (ids and, when it has them, names; index 0 = background) to a data set's
    categories {id: name}. Logs a warning when ids are remapped, names differ, or either side has categories
    the other lacks."""
    names = model_names or tuple(str(i) for i in model_ids)
    unique = {n for n, c in Counter(categories.values()).items() if c == 1}
    by_name = {n: c for c, n in categories.items() if n in unique}
    matched: list[int | None] = [None] * len(model_ids)
    for label in range(1, len(model_ids)):  # first by name: the same class whatever its id
        if model_names and names[label] in by_name:
            matched[label] = by_name[names[label]]
    used = set(matched)
    for label in range(1, len(model_ids)):  # then by id, among the categories no name claimed
        if matched[label] is None and model_ids[label] in categories and model_ids[label] not in used:
            matched[label] = model_ids[label]
    result = CategoryMap(tuple(model_ids), tuple(names), tuple(matched))
    _warn(result, categories, bool(model_names), source)
    return result


def _warn(result: CategoryMap, categories: dict[int, str], named: bool, source: str) -> None:
    pairs = list(zip(result.model_ids, result.names, result.dataset_ids, strict=True))[1:]
    moved = [f"{n!r} {m} -> {d}" for m, n, d in pairs if d is not None and d != m]
    if moved:
        log.warning(
            "%s: categories matched by name, their ids differ from the model's (name, model id -> data set id): "
            "%s; results use the data set's ids",
            source,
            ", ".join(moved),
        )
    renamed = [
        f"id {d}: {n!r} in the model, {categories[d]!r} here"
        for m, n, d in pairs
        if named and d is not None and categories[d] != n
    ]
    if renamed:
        log.warning("%s: category names differ, matched by id: %s", source, "; ".join(renamed))
    lost = [(m, n) for m, n, d in pairs if d is None]
    if lost:
        log.warning(
            "%s: the model's categories %s are not in this data set; their detections are dropped", source, lost
        )
    unknown = sorted(set(categories) - {d for d in result.dataset_ids[1:] if d is not None})
    if unknown:
        log.warning(
            "%s: categories %s are unknown to the model: they are never detected (AP 0 for them)",
            source,
            [(c, categories[c]) for c in unknown],
        )

"""Replay the committed fuzz corpus (and a few thousand random mutations) through the fuzz harness.

The coverage-guided run is `python tests/service/fuzz_decode.py --ci` (atheris); this keeps its seeds and
any crash reproducer added to tests/service/corpus/ running in every `make test`, with or without atheris.
"""

from __future__ import annotations

import fuzz_decode
import pytest


def test_corpus_replays_without_a_crash() -> None:
    harness = fuzz_decode.Harness()
    seeds = fuzz_decode.corpus()
    assert len(seeds) >= 20
    for data in seeds:
        harness(data)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # corrupt EXIF in mutated files
def test_random_mutations_of_the_corpus() -> None:
    assert fuzz_decode.random_fuzz(2000, seed=1) == 2000

import sys
from pathlib import Path

import os

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
for path in (str(ROOT), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(params=["reference", "numba"])
def zone_factory(request):
    """Constructor of a zone model: the pure-Python reference or the numba model. Both take
    the same keywords and expose the same methods, so policy tests run against each."""
    if request.param == "reference":
        from reference import RefZone
        return RefZone
    try:
        from kernels.model import Model
    except ModuleNotFoundError as exc:
        if exc.name in ("kernels", "kernels.model"):
            raise
        raise
    return Model


def pytest_collection_modifyitems(config, items):
    """Tests marked `heavy` simulate whole gigabytes: with NUMBA_DISABLE_JIT=1 (the coverage pass,
    where the model runs as plain Python) they would take hours, so that pass skips them; the
    smaller tests of the same files cover the same code."""
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        skip = pytest.mark.skip(reason="heavy: run with the JIT only")
        for item in items:
            if "heavy" in item.keywords:
                item.add_marker(skip)

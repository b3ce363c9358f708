"""MODEL_VERSION follows the model's source: kernels/versions.toml records the version of every
state of kernels/*.py (SOURCE_HASH), and says whether each change altered simulated numbers."""

import tomllib
from pathlib import Path

import kernels
from kernels import MODEL_VERSION, SOURCE_HASH

VERSIONS = Path(kernels.__file__).resolve().parent / "versions.toml"


def entries():
    return tomllib.loads(VERSIONS.read_text())["source"]


def test_the_current_source_is_recorded_under_the_current_model_version():
    recorded = {e["hash"]: e for e in entries()}
    entry = recorded.get(SOURCE_HASH)
    assert entry is not None, (
        f"kernels/*.py changed: SOURCE_HASH {SOURCE_HASH} is not in kernels/versions.toml. "
        f"If the change can alter any simulated number, bump MODEL_VERSION (now {MODEL_VERSION}) in "
        f"kernels/__init__.py, then add an entry with the hash printed by "
        f"`python -c \"import kernels; print(kernels.SOURCE_HASH)\"` after the bump, the new version "
        f"and alters_numbers = true. If it alters no simulated number, add "
        f"[[source]] hash = \"{SOURCE_HASH}\", version = \"{MODEL_VERSION}\", alters_numbers = false "
        f"and a one-line reason.")
    assert entry["version"] == MODEL_VERSION, (
        f"kernels/versions.toml records SOURCE_HASH {SOURCE_HASH} as model version {entry['version']}, "
        f"but kernels/__init__.py says MODEL_VERSION = {MODEL_VERSION!r}: make them agree (a bump of "
        f"MODEL_VERSION changes kernels/__init__.py and so SOURCE_HASH: record the hash taken after it).")


def test_each_entry_is_a_new_version_or_says_why_the_numbers_stay():
    seen_hashes, versions = set(), []
    for e in entries():
        where = f"kernels/versions.toml, entry {e.get('hash')}"
        assert set(e) == {"hash", "version", "alters_numbers", "reason"}, where
        assert len(e["hash"]) == 16 and all(c in "0123456789abcdef" for c in e["hash"]), where
        assert e["hash"] not in seen_hashes, f"{where}: recorded twice"
        seen_hashes.add(e["hash"])
        assert isinstance(e["alters_numbers"], bool), where
        assert e["reason"].strip() and "\n" not in e["reason"], f"{where}: the reason is one line"
        if e["alters_numbers"]:
            assert e["version"] not in versions, f"{where}: a change that alters numbers needs a new version"
        else:
            assert versions and e["version"] == versions[-1], \
                f"{where}: a change that alters no number keeps the version of the entry before it"
        versions.append(e["version"])
    assert versions[-1] == MODEL_VERSION, "the latest entry (the last) is the current version"


def test_the_file_is_package_data():
    pyproject = tomllib.loads((Path(kernels.__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "versions.toml" in pyproject["tool"]["setuptools"]["package-data"]["kernels"]

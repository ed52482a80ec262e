"""BugAtlas: a labeled failure dataset, a study report and practical diagnosis from the
issue trackers of LLM inference engines and open-model repositories.

The library API is what the CLI calls; a notebook user can call it directly::

    from bugatlas import Store, import_paths
    store = Store("study.db")
    import_paths(store, ["../shared/data/serving-issues-2025.jsonl.gz"])
    store.issues_frame().groupby("repo").size()
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bugatlas")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

from bugatlas.errors import BadInputError, BugAtlasError  # noqa: E402
from bugatlas.store import Issue, Label, Store  # noqa: E402


def __getattr__(name: str):
    # Import stages lazily: `import bugatlas` stays fast and light for the CLI.
    if name in {"import_paths", "detect_format"}:
        from bugatlas import importers

        return getattr(importers, name)
    raise AttributeError(name)


__all__ = ["BadInputError", "BugAtlasError", "Issue", "Label", "Store", "__version__",
           "import_paths", "detect_format"]  # fmt: skip

"""Export issues and labels to JSONL, CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import orjson

from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.store.store import Store

EXPORT_FORMATS = ("jsonl", "csv", "parquet")


def export_store(store: Store, out: str | Path, *, fmt: str = "jsonl", taxonomy: str | None = None) -> dict[str, int]:
    if fmt not in EXPORT_FORMATS:
        raise BadInputError(f"--format: unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, or a folder that cannot be made
        raise BadInputError(f"{out}: cannot make the output folder ({exc.strerror or exc})") from None
    frames = {
        "issues": store.issues_frame(include_references=True),
        "labels": store.labels_frame(taxonomy),
    }
    written = {}
    for name, df in frames.items():
        path = out / f"{name}.{fmt}"
        # written beside the file and renamed when complete: an interrupt leaves the previous export
        with replaced_when_complete(path, option="export") as fh:
            if fmt == "jsonl":
                for rec in df.to_dict(orient="records"):
                    fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain) + b"\n")
            elif fmt == "csv":
                flat = df.copy()
                for col in flat.columns:
                    if flat[col].map(lambda v: isinstance(v, list | dict)).any():
                        flat[col] = flat[col].map(lambda v: orjson.dumps(v).decode() if v is not None else None)
                flat.to_csv(fh, index=False)
            else:
                df.to_parquet(fh, index=False)
        written[str(path)] = len(df)
    return written


def _plain(value):
    # pandas NA/NaN-like values become JSON null
    return None

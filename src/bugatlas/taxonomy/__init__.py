"""Taxonomies as data: load, list, validate and map codebooks.

>>> from bugatlas.taxonomy import load_codebook
>>> cb = load_codebook("liu2025")
>>> [c.name for c in cb.path("root_cause", "Incompatible Version")]
['Environment', 'Incompatible Version']
"""

from bugatlas.taxonomy.loader import (
    BUILTIN_DIR,
    codebook_dirs,
    codebook_files,
    list_codebooks,
    load_codebook,
    resolve_codebook,
    validate_codebook,
)
from bugatlas.taxonomy.model import Category, Codebook, CodebookError, Dimension, normalize_name

__all__ = [
    "BUILTIN_DIR",
    "Category",
    "Codebook",
    "CodebookError",
    "Dimension",
    "codebook_dirs",
    "codebook_files",
    "list_codebooks",
    "load_codebook",
    "normalize_name",
    "resolve_codebook",
    "validate_codebook",
]

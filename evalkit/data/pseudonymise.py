"""Pseudonymisation of person identifiers at ingestion (DOMAIN.md: keyed hash, never plain).

A child's identifier is replaced, right after the data are read and before anything else
sees them, by ``HMAC-SHA256(key, identifier)`` (hex). The key comes from an environment
variable (``data.person_key_env``, default ``EVALKIT_PSEUDONYM_KEY``), never from the
design file. The same key gives the same pseudonym in every extract, so police and
social-care extracts pseudonymised with one key still link; without the key a pseudonym
cannot be reversed or recomputed from a guessed identifier (as a plain hash could be).

``data.person_key: ephemeral`` declares that the identifiers need no stable pseudonym (the
shipped synthetic example): a random key is drawn for the run and forgotten. evalkit uses
pseudonyms only to count distinct children and repeat reports, which do not depend on
the key, so results are the same with any key.

Only the distinct identifiers are hashed (a national extract has about 1 million children
among 3.5 million episodes): the column is factorised, the categories hashed, and the
result is a Categorical of pseudonyms with the original codes.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import secrets

import numpy as np
import pandas as pd

from ..errors import EvalkitError

DEFAULT_KEY_ENV = "EVALKIT_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16
_BLOCK = 64  # SHA-256 block size, for the HMAC pads
_HASH_BLOCK = 1 << 16  # identifiers hashed per block

KEY_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"


def pseudonym_key(key_env: str = DEFAULT_KEY_ENV, mode: str = "environment", where: str = "design") -> bytes:
    """The secret key for person pseudonyms.

    Parameters
    ----------
    key_env : str
        The environment variable holding the key (``data.person_key_env``).
    mode : {"environment", "ephemeral"}
        ``ephemeral``: a fresh random key for this run (``data.person_key``).
    where : str
        The design file, for messages.

    Raises
    ------
    EvalkitError
        When the variable is unset, empty or shorter than 16 characters. The message
        names the variable, never its value.
    """
    if mode == "ephemeral":
        return secrets.token_bytes(32)
    value = os.environ.get(key_env)
    if value is None or not value.strip():
        raise EvalkitError(
            where, f"person identifiers are pseudonymised with a secret key, but {key_env} is not set",
            f"set it to a secret of {MIN_KEY_LENGTH}+ characters, e.g. export {key_env}=$({KEY_HINT}) "
            "(or declare data.person_key: ephemeral for synthetic identifiers)",
            key="data.columns.person",
        )
    if len(value) < MIN_KEY_LENGTH:
        raise EvalkitError(where, f"the key in {key_env} is shorter than {MIN_KEY_LENGTH} characters",
                           f"set {key_env} to a longer secret (for example: export {key_env}=$({KEY_HINT}))",
                           key="data.person_key_env")
    return value.encode("utf-8")


def hmac_sha256_hex(key: bytes, values) -> list[str]:
    """HMAC-SHA256 of each value (text as UTF-8) under ``key``, as hex; equal to :func:`hmac.new`."""
    encoded = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    joined = _hmac_digests(key, encoded).hex()
    return [joined[i:i + 64] for i in range(0, len(joined), 64)]


def _hmac_digests(key: bytes, messages) -> bytes:
    """The 32-byte HMAC-SHA256 digests of ``messages`` (bytes-like), concatenated.

    The inner and outer pad states are prepared once and copied per message, which is
    about twice as fast as ``hmac.digest`` per call (that re-derives the pads each time).
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_copy = hashlib.sha256(bytes(b ^ 0x36 for b in key)).copy
    outer_copy = hashlib.sha256(bytes(b ^ 0x5C for b in key)).copy
    digests: list[bytes] = []
    append = digests.append
    for message in messages:
        inner = inner_copy()
        inner.update(message)
        outer = outer_copy()
        outer.update(inner.digest())
        append(outer.digest())
    return b"".join(digests)


def pseudonymise(values: pd.Series, key: bytes) -> pd.Series:
    """Replace identifiers by their keyed hash; empty cells become missing.

    Parameters
    ----------
    values : Series
        Identifiers as read (text, numbers, a Categorical, or an Arrow dictionary as a
        Parquet text column is read by :func:`evalkit.data.sources.read_table`). Surrounding spaces are
        ignored, so ``" C1"`` and ``"C1"`` are one person; numbers are hashed as their
        text (``17`` and ``17.0`` as ``"17"``).
    key : bytes
        From :func:`pseudonym_key`.

    Returns
    -------
    Series
        A Categorical of 64-character hex pseudonyms (Arrow-backed text: no Python
        string per person), same index, NaN where empty.
    """
    import pyarrow as pa

    codes, identifiers = _codes_and_identifiers(values)
    data = identifiers.buffers()[2]
    offsets = np.frombuffer(identifiers.buffers()[1], dtype=np.int64 if pa.types.is_large_string(identifiers.type)
                            else np.int32)[identifiers.offset:identifiers.offset + len(identifiers) + 1]
    view = memoryview(data) if data is not None else memoryview(b"")
    count = len(identifiers)
    hexed = bytearray(64 * count)
    # in blocks: a million identifiers' Python-level bounds and digests are never held at once
    for first in range(0, count, _HASH_BLOCK):
        last = min(count, first + _HASH_BLOCK)
        bounds = offsets[first:last + 1].tolist()
        digests = _hmac_digests(key, (view[start:end] for start, end in zip(bounds[:-1], bounds[1:])))
        hexed[64 * first:64 * last] = binascii.hexlify(digests)
    hashed = pa.Array.from_buffers(pa.string(), count,
                                   [None, pa.py_buffer(np.arange(0, 64 * count + 1, 64, dtype=np.int32)), pa.py_buffer(hexed)])
    categories = pd.Index(pd.arrays.ArrowStringArray(hashed))
    codes = codes.astype(np.int32 if count < 2**31 - 1 else np.int64, copy=False)
    return pd.Series(categorical_of_distinct(codes, categories), index=values.index, name=values.name)


def categorical_of_distinct(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    """A Categorical from valid codes (-1 for missing) and categories known to be distinct.

    ``pandas.Categorical.from_codes`` checks that the categories are distinct with a hash
    table of a Python string per value, and keeps that table on the categories: for a
    million pseudonyms about 180 MiB and half a second, held for the whole run. The
    pseudonyms are distinct by construction (the HMAC of distinct identifiers), so the
    dtype is made without the check (pandas' ``CategoricalDtype._from_fastpath``, used by
    pandas itself for the same purpose); a pandas without it gets the checked path, and
    its table is dropped afterwards. Either way the Categorical is the same.
    """
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    if fastpath is not None:
        try:
            return pd.Categorical.from_codes(codes, dtype=fastpath(categories, False), validate=False)
        except (TypeError, ValueError):  # a pandas whose fast path differs: the checked path below
            pass
    categorical = pd.Categorical.from_codes(codes, categories=categories)
    cache = getattr(categories, "_cache", None)  # pandas' cache of the check's hash table
    if isinstance(cache, dict):
        cache.pop("_engine", None)
    return categorical


def _codes_and_identifiers(values: pd.Series):
    """(codes with -1 for missing, the distinct identifiers as an Arrow string array).

    Identifiers are stripped of surrounding spaces; an empty one is missing.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.int64)
        text = _as_text(pd.Series(values.cat.categories))
    elif isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_dictionary(values.dtype.pyarrow_dtype):
        # an Arrow dictionary (a Parquet text column read as one), one per row group: the
        # dictionaries are put end to end and their indices shifted to match; the merge
        # below (one hash of the distinct values) makes them one. Cheaper than unifying
        # the dictionaries first, which hashes every value once more.
        # The batches of one row group share its dictionary (the same buffers): it is put in once.
        chunks = values.array.__arrow_array__().chunks
        parts, dictionaries, starts, start = [], [], {}, 0
        for chunk in chunks:
            dictionary = chunk.dictionary
            same = (dictionary.offset, len(dictionary), *(b.address if b is not None else 0 for b in dictionary.buffers()))
            if same not in starts:
                starts[same] = start
                dictionaries.append(dictionary)
                start += len(dictionary)
            indices = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
            parts.append(np.where(indices >= 0, indices + starts[same], -1))
        codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        value_type = values.dtype.pyarrow_dtype.value_type
        text = pa.concat_arrays(dictionaries) if dictionaries else pa.array([], value_type)
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            text = _as_text(pd.Series(text.to_pandas()))
    else:
        encoded = _as_text(values).dictionary_encode()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        text = encoded.dictionary
    stripped = pc.utf8_trim_whitespace(text)
    stripped = pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)
    merged = stripped.dictionary_encode()  # " C1" and "C1" are one person; "" is missing
    mapping = np.append(pc.fill_null(merged.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64), -1)
    identifiers = merged.dictionary
    return mapping[codes], identifiers.cast(pa.large_string())


def _as_text(values: pd.Series):
    """A pandas column as an Arrow string array (numbers written as integers when whole)."""
    import pyarrow as pa

    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=float)
        missing = np.isnan(numbers)
        whole = ~missing & np.isfinite(numbers) & (numbers == np.round(numbers))
        text = pd.Series(numbers).astype(str).astype(object)
        text[whole] = pd.Series(numbers[whole].astype(np.int64)).astype(str).to_numpy(dtype=object)
        text[missing] = None
        return pa.array(text.to_numpy(dtype=object), type=pa.string())
    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pa.array(values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v)),
                        type=pa.string())
    array = pa.array(values, from_pandas=True) if not isinstance(values.dtype, pd.CategoricalDtype) else None
    if array is None or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        as_text = values.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
        array = pa.array(as_text, type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array

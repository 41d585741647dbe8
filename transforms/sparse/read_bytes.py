"""An input's bytes, bounded in size, or the dead letter saying why not. No Beam in here.

Kept free of Beam (and TensorFlow) so that a featurizing process
(transforms/sparse/featurize_processes.py) starts in a fraction of a second.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from embedbeam.transforms.common.records import DeadLetter, InputRef, dead_letter_for
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.modalities import MODALITIES

READ_STAGE = "read"
LIST_STAGE = "list"  # the stage of refs that listing marked broken (InputRef.problem)
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Reads go in chunks this size: `read(max_bytes + 1)` would allocate the whole
# limit (DEFAULT_MAX_BYTES unless --max-input-bytes says otherwise) for every
# file, however small.
READ_CHUNK_BYTES = 64 * 1024


def read_or_dead_letter(ref: InputRef, max_bytes: int) -> bytes | DeadLetter:
    """The bytes of `ref`, or its dead letter: stage `list` for what listing found broken."""
    if ref.problem is not None:
        return dead_letter_for(LIST_STAGE, ref.uri, InvalidInput(*ref.problem))
    try:
        return read_bounded(ref, max_bytes)
    except Exception as error:  # noqa: BLE001 - every failure becomes a dead letter
        return dead_letter_for(READ_STAGE, ref.uri, error)


def read_bounded(ref: InputRef, max_bytes: int) -> bytes:
    """The bytes at `ref.uri`, never more than `max_bytes` of them.

    An oversize file becomes a dead letter, unless its modality featurizes
    from a prefix (audio, capped in time): then the first `max_bytes` are used.
    """
    if ref.problem is not None:
        raise InvalidInput(*ref.problem)
    if ref.inline is not None:
        if len(ref.inline) > max_bytes:
            raise InvalidInput("file_too_large", f"inline content over {max_bytes} bytes")
        return ref.inline
    if not ref.uri:
        raise InvalidInput("missing_uri", "the manifest row has no uri")
    if ref.modality is None:
        raise InvalidInput(
            "unknown_modality", f"cannot tell the modality of {ref.uri} from its extension"
        )
    try:
        data = _read_file(ref.uri, max_bytes + 1)
    except FileNotFoundError as error:
        raise InvalidInput("missing_file", str(error)) from error
    except (OSError, ValueError) as error:  # ValueError: a scheme no Beam filesystem serves
        raise InvalidInput("unreadable_file", f"{type(error).__name__}: {error}") from error
    if len(data) > max_bytes:
        modality = MODALITIES.get(ref.modality)
        if modality is not None and modality.reads_prefix:
            return data[:max_bytes]
        raise InvalidInput(
            "file_too_large", f"larger than the {max_bytes}-byte limit (--max-input-bytes)"
        )
    return data


def _read_file(uri: str, limit: int) -> bytes:
    """Up to `limit` bytes of the file at `uri`.

    A local file is read with os.open and os.read, not FileSystems.open (a
    new FileSystem object, a buffered reader): less work per file and fewer
    system calls, each of which lets another thread take the GIL, which the
    reader must then wait to get back; in the embed job the read-ahead thread
    shares the GIL with the model's (measured in bench/README.md, 'Why the
    code is this way'). Every other scheme goes through Beam's FileSystems,
    imported only then (this module stays light without it).
    """
    if "://" in uri:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return _read_at_most(handle.read, limit)
    descriptor = os.open(uri, os.O_RDONLY)
    try:
        return _read_at_most(functools.partial(os.read, descriptor), limit)
    finally:
        os.close(descriptor)


def _read_at_most(read: Callable[[int], bytes], limit: int) -> bytes:
    """Up to `limit` bytes from `read(size)` calls, without allocating `limit` bytes up front.

    A read shorter than asked ends it: a regular file, and the buffered
    readers FileSystems hands out, read short only at the end (one system call
    fewer per small file).
    """
    chunks = []
    while limit > 0:
        size = min(limit, READ_CHUNK_BYTES)
        chunks.append(read(size))
        limit -= len(chunks[-1])
        if len(chunks[-1]) < size:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

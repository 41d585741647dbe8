"""An input's bytes, bounded in size, or the dead letter saying why not. No Beam in here.

A local input is opened without blocking and read only if it is a regular file: a
FIFO, a socket, a device or a directory is a dead letter, never a hang. Listing
checks the files it opens (.jsonl inputs, manifests) with the same open_regular_file.

Kept free of Beam (and TensorFlow) so that a featurizing process
(transforms/sparse/featurize_processes.py) starts in a fraction of a second.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
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
# open(2) of a FIFO waits for a writer, and of a terminal may make it ours; for a
# regular file these flags change nothing. Not O_NOFOLLOW: a symlink to a regular
# file is an ordinary input.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


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
    data = read_file(ref.uri, max_bytes + 1)
    if len(data) > max_bytes:
        modality = MODALITIES.get(ref.modality)
        if modality is not None and modality.reads_prefix:
            return data[:max_bytes]
        raise InvalidInput(
            "file_too_large", f"larger than the {max_bytes}-byte limit (--max-input-bytes)"
        )
    return data


def read_file(uri: str, limit: int | None = None) -> bytes:
    """Up to `limit` bytes (all, when None) of the file at `uri`; InvalidInput says why not.

    A local file is read with os.open and os.read (read_local_file), not
    FileSystems.open (a new FileSystem object, a buffered reader): less work
    per file and fewer system calls, each of which lets another thread take
    the GIL, which the reader must then wait to get back; in the embed job the
    read-ahead thread shares the GIL with the model's (measured in
    bench/README.md, 'Why the code is this way'). Every other scheme goes
    through Beam's FileSystems, imported only then (this module stays light
    without it).
    """
    if "://" not in uri:
        return read_local_file(uri, limit)
    try:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return handle.read() if limit is None else _read_at_most(handle.read, limit)
    except FileNotFoundError as error:
        raise InvalidInput("missing_file", str(error)) from error
    except (OSError, ValueError) as error:  # ValueError: a scheme no Beam filesystem serves
        raise InvalidInput("unreadable_file", f"{type(error).__name__}: {error}") from error


def read_local_file(path: str, limit: int | None = None) -> bytes:
    """Up to `limit` bytes (all, when None) of the regular file at local `path`.

    Anything but a regular file is refused before a byte is read
    (open_regular_file), and a file whose size changes while it is read is
    `file_changed`: the bytes would be neither the old file nor the new one.
    """
    descriptor, size = open_regular_file(path)
    try:
        # One byte past the size: a file that grew shows, and a small file's read
        # allocates no more than it holds.
        want = size + 1 if limit is None else min(size + 1, limit)
        if not size:  # procfs and sysfs files say size 0 whatever they hold
            want = limit
        if want is not None and want <= READ_CHUNK_BYTES:
            data = os.read(descriptor, want)  # most inputs: one read, no more to ask
        else:
            data = _read_at_most(functools.partial(os.read, descriptor), want)
    except OSError as error:
        raise InvalidInput("unreadable_file", f"{type(error).__name__}: {error}") from error
    finally:
        os.close(descriptor)
    if size and len(data) != (size if limit is None else min(size, limit)):
        raise InvalidInput(
            "file_changed", f"{path} was {size} bytes when opened, {len(data)} while read"
        )
    return data


def open_regular_file(path: str) -> tuple[int, int]:
    """(descriptor, size) of the regular file at local `path`, open for reading.

    A FIFO, a socket, a device or a directory is `not_a_regular_file` (opened
    without blocking, refused by fstat before any read); a symlink loop is
    `symlink_loop`; a path or a symlink to nothing is `missing_file`; anything
    else that fails is `unreadable_file`.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise _open_failure(path, error) from error
    try:
        status = os.fstat(descriptor)
    except OSError as error:
        os.close(descriptor)
        raise InvalidInput("unreadable_file", f"{type(error).__name__}: {error}") from error
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise _not_regular(path, status.st_mode)
    return descriptor, status.st_size


def _open_failure(path: str, error: OSError) -> InvalidInput:
    if error.errno == errno.ELOOP:
        return InvalidInput("symlink_loop", f"{path}: a loop of symbolic links")
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        if os.path.islink(path):
            return InvalidInput("missing_file", f"{path} is a symlink to nothing")
        return InvalidInput("missing_file", str(error))
    if error.errno in (errno.ENXIO, errno.EOPNOTSUPP, errno.EISDIR):  # a socket, a directory
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            return _not_regular(path, mode)
    return InvalidInput("unreadable_file", f"{type(error).__name__}: {error}")


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(path: str, mode: int) -> InvalidInput:
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return InvalidInput("not_a_regular_file", f"{path} is {kind}, not a regular file")


def _read_at_most(read: Callable[[int], bytes], limit: int | None) -> bytes:
    """Up to `limit` bytes (all, when None) from `read(size)` calls, without allocating
    `limit` bytes up front.

    A read shorter than asked ends it: a regular file, and the buffered
    readers FileSystems hands out, read short only at the end (one system call
    fewer per small file).
    """
    chunks = []
    while limit is None or limit > 0:
        size = READ_CHUNK_BYTES if limit is None else min(limit, READ_CHUNK_BYTES)
        chunks.append(read(size))
        if limit is not None:
            limit -= len(chunks[-1])
        if len(chunks[-1]) < size:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

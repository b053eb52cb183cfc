"""Reading a model folder for the modules its pickles name, within a bound of time and work.

The warm parent (warming.py) imports those libraries before the first worker, and the first
worker waits while this runs, so the bound holds wherever the time goes: a folder of thousands
of files, folders a thousand levels deep, a zip of 300,000 entries, a big pickle. Nothing is
unpickled: the names come from the pickle's opcodes. A zip (``torch.save``'s format) is read
from its central directory one entry at a time, since ``zipfile.ZipFile`` reads all of it
before the first member can be opened.
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

# Files that may hold a pickle (a zip of them: torch.save), and how much is read: a pickle names
# its classes before their data.
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".sav", ".pt", ".pth", ".bin"}
MODEL_FILES_READ, MODEL_MEMBERS_READ, MODEL_BYTES_READ, MODEL_ENTRIES_SEEN = 8, 4, 256 << 10, 5000
MODEL_DEPTH = 32  # folders deeper than this are not looked in: no model keeps its pickles there
MODEL_SCAN_S = 0.5  # then what is left is learned from the worker, as without the scan
CHECK_EVERY = 256  # folder entries, zip entries or opcodes between two looks at the clock


@dataclass
class Scan:
    """One scan's budget, and where it stopped short (None while it has not)."""

    seconds: float
    deadline: float = 0.0
    stopped: str | None = None

    def __post_init__(self):
        self.deadline = time.monotonic() + self.seconds

    def over(self, where: str) -> bool:
        if self.stopped is None and time.monotonic() > self.deadline:
            self.stopped = f"after {self.seconds} s, in {where}"
        return self.stopped is not None


def scan(model_dir: str) -> tuple[list[str], Scan]:
    """The modules the pickles in ``model_dir`` name (repeats included), and the scan itself."""
    budget = Scan(MODEL_SCAN_S)
    names: list[str] = []
    for path in _pickled_files(model_dir, budget):
        for data in _pickles(path, budget):
            names += pickle_modules(data, budget, path)
        if budget.over(path):
            break
    return names, budget


def _pickled_files(model_dir: str, budget: Scan) -> Iterator[str]:
    """The files that may hold a pickle, folder by folder in sorted order, without recursion."""
    found = seen = 0
    folders = [(model_dir, 0)]
    while folders:
        folder, depth = folders.pop()
        files, subfolders, full = _listing(folder, budget, MODEL_ENTRIES_SEEN - seen)
        seen += len(files) + len(subfolders)
        for path in files:
            if os.path.splitext(path)[1].lower() in PICKLE_SUFFIXES and os.path.isfile(path):  # not a FIFO
                yield path
                found += 1
                if found == MODEL_FILES_READ:
                    return
        if full or budget.stopped:  # a model folder of thousands of files: enough was looked at
            return
        if depth < MODEL_DEPTH:
            folders.extend((sub, depth + 1) for sub in reversed(subfolders))


def _listing(folder: str, budget: Scan, most: int) -> tuple[list[str], list[str], bool]:
    """``folder``'s files and folders (not links to folders), sorted, of its first ``most``
    entries; and whether it held more."""
    files, folders = [], []
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries, 1):
                if count > most or (count % CHECK_EVERY == 0 and budget.over(folder)):
                    return sorted(files), sorted(folders), count > most
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                (folders if is_folder else files).append(entry.path)
    except OSError:
        pass  # a folder that cannot be read is left out
    return sorted(files), sorted(folders), False


def _pickles(path: str, budget: Scan) -> Iterator[bytes]:
    """The first bytes of the pickle in ``path``, or of each pickle in it when it is a zip."""
    try:
        with open(path, "rb") as f:
            directory = _central_directory(f)
            if directory is None:
                f.seek(0)
                yield f.read(MODEL_BYTES_READ)
                return
            for member in _pickle_members(f, directory, budget, path):
                data = _member_start(f, *member, budget, path)
                if data is not None:
                    yield data
    except (OSError, ValueError, struct.error, zlib.error):  # unreadable, or a zip that lies about itself
        return


# The zip format's records (APPNOTE.TXT): end of central directory, its zip64 locator and record,
# a central directory entry, a local file header.
_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_ZIP64_EXTRA, _STORED, _DEFLATED, _ENCRYPTED = 0x0001, 0, 8, 0x1


def _central_directory(f) -> tuple[int, int, int] | None:
    """Where the zip in ``f`` has its central directory: (offset, size, shift of every offset,
    for a zip with data before it); None when ``f`` is not a zip."""
    size = f.seek(0, os.SEEK_END)
    tail_size = min(size, _END.size + 0xFFFF + _END64_LOCATOR.size)  # the end record, a comment, zip64's locator
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        return None
    *_, directory_size, offset, _ = _END.unpack_from(tail, at)
    end = size - tail_size + at
    if at >= _END64_LOCATOR.size and tail[at - _END64_LOCATOR.size:at - _END64_LOCATOR.size + 4] == b"PK\x06\x07":
        _, _, end64, _ = _END64_LOCATOR.unpack_from(tail, at - _END64_LOCATOR.size)
        f.seek(end64)
        record = f.read(_END64.size)
        if len(record) == _END64.size and record[:4] == b"PK\x06\x06":
            *_, directory_size, offset = _END64.unpack(record)
            end = end64
    shift = end - directory_size - offset
    f.seek(offset + shift)
    return (offset + shift, directory_size, shift) if f.read(4) == b"PK\x01\x02" else None


def _pickle_members(f, directory: tuple[int, int, int], budget: Scan, path: str) -> list[tuple[int, int, int]]:
    """The members named ``*.pkl``, in the directory's order: (method, compressed size, offset).
    The directory is read by its size, not by the count of entries the end record gives (a
    16-bit field that a writer without zip64 lets wrap)."""
    offset, size, shift = directory
    f.seek(offset)
    members: list[tuple[int, int, int]] = []
    count = 0
    while f.tell() < offset + size and len(members) < MODEL_MEMBERS_READ:
        header = f.read(_ENTRY.size)
        if len(header) < _ENTRY.size or header[:4] != b"PK\x01\x02":
            break
        fields = _ENTRY.unpack(header)
        flags, method, compressed, name_size, extra_size, comment_size, local = (
            fields[5], fields[6], fields[10], fields[12], fields[13], fields[14], fields[18])
        name, extra = f.read(name_size), f.read(extra_size)
        f.seek(comment_size, os.SEEK_CUR)
        if name.endswith(b".pkl") and not flags & _ENCRYPTED:
            compressed, local = _zip64_sizes(extra, fields[11], compressed, local)
            members.append((method, compressed, local + shift))
        count += 1
        if count % CHECK_EVERY == 0 and budget.over(path):
            break
    return members


def _zip64_sizes(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int]:
    """The compressed size and offset, from the zip64 extra field where the entry says 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == _ZIP64_EXTRA:
            values = iter(struct.unpack_from(f"<{min(length, len(extra) - at - 4) // 8}Q", extra, at + 4))
            size = next(values, size) if size == 0xFFFFFFFF else size  # a short field keeps what the entry said
            compressed = next(values, compressed) if compressed == 0xFFFFFFFF else compressed
            offset = next(values, offset) if offset == 0xFFFFFFFF else offset
            break
        at += 4 + length
    return compressed, offset


def _member_start(f, method: int, compressed: int, offset: int, budget: Scan, path: str) -> bytes | None:
    """The first MODEL_BYTES_READ bytes of a stored or deflated member; None for another method."""
    f.seek(offset)
    header = f.read(_LOCAL.size)
    if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
        return None
    name_size, extra_size = _LOCAL.unpack(header)[-2:]
    f.seek(name_size + extra_size, os.SEEK_CUR)
    if method == _STORED:
        return f.read(min(compressed, MODEL_BYTES_READ))
    if method != _DEFLATED:
        return None
    inflate, out, left = zlib.decompressobj(-zlib.MAX_WBITS), io.BytesIO(), compressed
    while left > 0 and out.tell() < MODEL_BYTES_READ and not budget.over(path):
        chunk = f.read(min(left, 64 << 10))
        if not chunk:
            break
        left -= len(chunk)
        out.write(inflate.decompress(chunk, MODEL_BYTES_READ - out.tell()))
    return out.getvalue()


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_GETS, _PUTS = {"BINGET", "LONG_BINGET", "GET"}, {"BINPUT", "LONG_BINPUT", "PUT"}


def pickle_modules(data: bytes, budget: Scan | None = None, where: str = "") -> list[str]:
    """The modules a pickle's GLOBAL and STACK_GLOBAL opcodes name, as far as ``data`` is a
    pickle (joblib puts raw array bytes between its pickles; a read stops at the first), and as
    far as the budget goes."""
    modules: list[str] = []
    strings: list[str] = []  # pushed, in order: STACK_GLOBAL takes its module from them
    memo: dict[int, str | None] = {}
    top: str | None = None  # the string on top of the stack, if the last push was one
    try:
        for name, arg in _opcodes(data, budget, where):
            if name == "MEMOIZE" or name in _PUTS:
                memo[len(memo) if name == "MEMOIZE" else arg] = top
                continue
            top = arg if name in _STRINGS else memo.get(arg) if name in _GETS else None
            if top is not None:
                strings.append(top)
            elif name == "GLOBAL":
                modules.append(arg.split(" ", 1)[0])
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                modules.append(strings[-2])
    except Exception:  # the end of the pickle, or of what was read of it
        pass
    return modules


def _opcodes(data: bytes, budget: Scan | None, where: str) -> Iterator[tuple[str, object]]:
    """The pickle's opcodes (name, argument) until its end, or until the budget is spent."""
    for count, (opcode, arg, _) in enumerate(pickletools.genops(io.BytesIO(data)), 1):
        if budget is not None and count % CHECK_EVERY == 0 and budget.over(where):
            return
        yield opcode.name, arg

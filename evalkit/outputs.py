"""Writing a command's outputs: all of them or none, never half-written.

A run writes several files (results.json, report.html, report.pdf). Each is written to a
temporary file in the output folder first; only when every one of them is complete (and
flushed to disk) are they renamed into place, and if a rename fails the files already
replaced are put back. So a full disk, a folder where a file should be, a missing
Chromium or an interrupted run leaves the previous good outputs as they were and no
temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import EvalkitError

#: a producer gets the temporary file's path and writes the output into it
Producer = Callable[[Path], None]


def _fail(path: Path, exc: OSError, what: str) -> EvalkitError:
    reason = exc.strerror or type(exc).__name__
    return EvalkitError(str(path), f"cannot {what} ({reason})",
                        "free some disk space or choose another --out; nothing was written")


def check_target(path: Path) -> None:
    """Refuse a target that is not a regular file (or absent): a folder, a FIFO, a device."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _fail(path, exc, "look at the output file") from None
    if stat.S_ISDIR(info.st_mode):
        raise EvalkitError(str(path), "is a folder, so the output file cannot be written there",
                           "remove or rename the folder, or choose another --out")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise EvalkitError(str(path), "is not a regular file", "remove it or choose another --out")


def prepare_folder(folder: Path) -> bool:
    """Create the output folder if needed; returns whether it was created here."""
    if folder.exists() and not folder.is_dir():
        raise EvalkitError(str(folder), "exists and is not a folder", "choose another --out")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalkitError(str(folder), f"cannot create the output folder ({exc.strerror})",
                           "choose another --out") from None
    if not os.access(folder, os.W_OK):
        raise EvalkitError(str(folder), "the output folder is not writable", "choose another --out")
    return created


def text_producer(text: str) -> Producer:
    def write(temp: Path) -> None:
        with open(temp, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    return write


def write_outputs(outputs: dict[Path, Producer | str]) -> list[Path]:
    """Write every output or none.

    Parameters
    ----------
    outputs : dict
        Target path -> its text, or a producer writing the file at a temporary path
        (e.g. Chromium printing a PDF). Targets may lie in different folders.

    Returns
    -------
    list of Path
        The targets, in the order given.
    """
    targets = list(outputs)
    for target in targets:
        check_target(target)
    created = [folder for folder in dict.fromkeys(t.parent for t in targets) if prepare_folder(folder)]
    temps: dict[Path, Path] = {}
    try:
        for target, content in outputs.items():
            producer = text_producer(content) if isinstance(content, str) else content
            temp = _temporary(target)
            temps[target] = temp
            try:
                producer(temp)
            except OSError as exc:
                raise _fail(target, exc, "write the output") from None
            _ordinary_permissions(temp)
        _replace_all(temps)
        temps.clear()
    except BaseException:
        for temp in temps.values():
            with contextlib.suppress(OSError):
                temp.unlink()
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when still empty
        raise
    return targets


def _temporary(target: Path) -> Path:
    # hidden, in the target's folder (a rename is atomic only within one file system), and
    # ending with the target's own suffix (Chromium decides how to open a file by its name)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(handle)
    return Path(name)


def _ordinary_permissions(temp: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions


def _replace_all(temps: dict[Path, Path]) -> None:
    """Rename every temporary file into place; on a failure, put back what was replaced."""
    backups: list[tuple[Path, Path | None]] = []
    try:
        for target, temp in temps.items():
            backup = None
            if os.path.lexists(target):
                backup = _temporary(target)
                os.replace(target, backup)
            backups.append((target, backup))
            os.replace(temp, target)
    except BaseException as exc:  # a failure, Ctrl-C or SIGTERM between two renames: put everything back
        for target, backup in reversed(backups):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink()
        if isinstance(exc, OSError):
            raise _fail(target, exc, "replace the output") from None
        raise
    for _, backup in backups:
        if backup is not None:
            with contextlib.suppress(OSError):
                backup.unlink()


@contextlib.contextmanager
def interrupted_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end a command like Ctrl-C, so its clean-up (temporary files,
    a child Chromium) runs before it exits."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, old)


__all__ = ["write_outputs", "check_target", "prepare_folder", "interrupted_as_keyboard_interrupt"]

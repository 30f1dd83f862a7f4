"""The API key a command uses: from ``--api-key-file`` (read carefully) or, without it, from
``COMFY_DEPLOY_API_KEY`` when the client first needs it. Never from the command line."""

from __future__ import annotations

import argparse
import os
import shlex
import stat
from typing import Final

from cdsessions._cli._failures import USAGE, Fail
from cdsessions._cli._ledger import ledger_for
from cdsessions.client import SessionsClient

__all__ = ["MAX_KEY_FILE_BYTES", "client_for", "read_key_file"]

#: A key is one short line; a larger "key file" is a mistake (or /dev/zero), not a key.
MAX_KEY_FILE_BYTES: Final = 4096


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_key_file(path: str) -> str:
    """The key in ``path``: a regular file of at most :data:`MAX_KEY_FILE_BYTES` UTF-8 bytes.

    Devices, FIFOs and directories are refused before reading (``/dev/zero`` never ends, a FIFO
    would block), and no more than the limit is ever read, whatever the file claims its size is.
    """

    def refused(why: str) -> Fail:
        return Fail(f"cannot read the API key file {shlex.quote(path)}: {why}", USAGE)

    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; O_NOCTTY: a terminal device
    # must not become this process's controlling terminal.
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC"):  # POSIX only; harmless where missing
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        why = error.strerror if isinstance(error, OSError) and error.strerror else "cannot open it"
        raise refused(why.lower()) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise refused("it is a directory")
        if not stat.S_ISREG(mode):
            raise refused("it is not a regular file (a device, FIFO or socket)")
        data = _read_at_most(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise refused((error.strerror or "cannot read it").lower()) from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise refused(f"it is larger than {MAX_KEY_FILE_BYTES} bytes (a key is one short line)")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise refused("it is not UTF-8 text") from None
    if not key:
        raise refused("it is empty")
    return key


def client_for(args: argparse.Namespace) -> SessionsClient:
    """The client for the connection options ``args`` holds (``--server``, ``--api-key-file``),
    recording its creates in the ledger when the command takes the ledger options."""
    if args.api_key_file is None:
        # Reads COMFY_DEPLOY_API_KEY when called.
        return SessionsClient(server=args.server, ledger=ledger_for(args))
    key = read_key_file(args.api_key_file)
    return SessionsClient(key, server=args.server, ledger=ledger_for(args, (key,)))

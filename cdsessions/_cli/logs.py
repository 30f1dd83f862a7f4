"""``cdsessions logs [-f] [--level L] SESSION_ID``: a session's log lines, escaped (or one JSON
object a line with ``--json``)."""

from __future__ import annotations

import argparse
from typing import Final

from returns.result import Success

from cdsessions._cli._failures import OK, Failed, ok
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._output import out, print_json
from cdsessions._cli._parser import Command
from cdsessions._core.text import mask_urls
from cdsessions._core.timeouts import Timeout
from cdsessions.models import LogLine

__all__ = ["LOGS"]

#: ``-f``: no overall deadline (Ctrl-C ends it), but ten minutes without a byte is a stall.
FOLLOW_TIMEOUT: Final = Timeout(connect=10.0, read=600.0, total=None)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing lines as they come"
    )
    parser.add_argument("--level", metavar="L", help="only lines of this level (e.g. info, error)")
    parser.add_argument(
        "--show-url",
        action="store_true",
        help="print URLs in messages as they are (a session's url is a secret; masked otherwise)",
    )


def _show(line: LogLine, args: argparse.Namespace) -> None:
    stamp = line.timestamp.isoformat().replace("+00:00", "Z")
    # A session's tunnel url can appear in its own log: shown only with --show-url, as by get.
    message = line.message if args.show_url else mask_urls(line.message)
    if args.json:
        print_json({"timestamp": stamp, "level": line.level, "message": message})
    else:
        # out() escapes every non-printable character: a line cannot drive the terminal, and a
        # line break inside a message cannot forge the next line.
        out(f"{stamp} {line.level} {message.replace(chr(10), chr(92) + 'n')}")


def _logs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if not args.follow:
            for line in ok(client.logs(args.session_id, level=args.level)):
                _show(line, args)
            return OK
        followed = client.follow_logs(args.session_id, level=args.level, timeout=FOLLOW_TIMEOUT)
        try:
            for result in followed:
                if not isinstance(result, Success):
                    raise Failed(result.failure())
                _show(result.unwrap(), args)
        finally:
            followed.close()
    return OK


LOGS: Final = Command(
    "logs",
    "Print a session's log (the server keeps it about 10 minutes after the session ends).",
    _logs,
    _arguments,
    "Without -f, prints the lines the log holds now. With -f, keeps printing new lines until\n"
    "the stream ends, Ctrl-C, or ten minutes pass without a byte. Each line is\n"
    "`TIMESTAMP LEVEL MESSAGE`, escaped, URLs masked (--show-url: as sent); --json prints\n"
    "one object a line.",
)

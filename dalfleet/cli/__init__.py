"""The ``dalfleet`` command line (and ``python -m dalfleet``): parse, call the library, print.

It mirrors the reference's ``dal agent fleet`` and ``dal agent mold`` subcommands and
keeps their output lines byte for byte, which scripts grep (SPEC §8). Every command
works on the current directory, or on ``--base DIR``; ``--json`` prints one JSON
document instead of the human lines. ``--base`` and ``--json`` are accepted before
or after the subcommand.

* :mod:`dalfleet.cli.parser`: arguments, help and its examples.
* :mod:`dalfleet.cli.commands`: one function per subcommand; calls the library.
* :mod:`dalfleet.cli.output`: every line, JSON document, progress bar and file written.

Errors are one line on stderr, ``dalfleet: error: MESSAGE``, exit status 1; usage
errors (unknown subcommand, missing or malformed arguments) exit with status 2.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Nothing else at module level: ``dalfleet --version`` is answered from here before
# argparse, the parser or any command module is imported (start-up time is most of
# what a short command costs). typing.TYPE_CHECKING without importing typing:
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["build_parser", "entry", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``dalfleet`` argument parser, with every subcommand. Never raises."""
    from dalfleet.cli.parser import build_parser as build

    return build()


def _parse(argv: list[str]) -> argparse.Namespace:
    from dalfleet.cli.parser import build_parser as build
    from dalfleet.cli.parser import command_in

    return build(command_in(argv)).parse_args(argv)


def _exit_code(code: object) -> int:
    from dalfleet.cli import output

    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    output.error_line(str(code))
    return EXIT_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    func = args.func
    if func is None:  # "dalfleet", "dalfleet mold" or "dalfleet task" alone
        parser: argparse.ArgumentParser = args.parser
        parser.error(f"missing subcommand (choose from {', '.join(args.subcommands)})")
    status: int = func(args)
    # Flush here so a closed pipe is reported as BrokenPipeError inside main().
    sys.stdout.flush()
    return status


def _version() -> int:
    # What argparse's ``--version`` action prints (the parser has the same action,
    # for ``--version`` given with other arguments), without building the parser.
    from dalfleet._version import __version__

    try:
        sys.stdout.write(f"dalfleet {__version__}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        return EXIT_ERROR
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dalfleet`` command line with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit status: 0 on success, 1 on an error (one line on stderr),
    2 on a usage error, 130 when interrupted.

    Never raises: errors, usage errors, ``--help``/``--version``, a broken pipe and
    Ctrl-C are all reported and turned into the exit status.
    """
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv == ["--version"]:
        return _version()
    from dalfleet.cli import output
    from dalfleet.errors import FleetError

    for stream in (sys.stdout, sys.stderr):
        # A terminal or pipe that cannot encode ✅ or a name gets an escape, not a crash.
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        return _dispatch(_parse(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return _exit_code(exc.code)
    except FleetError as exc:
        output.error_line(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        output.error_line("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``dalfleet export | head``); say nothing more.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("DALFLEET_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        detail = str(exc).strip()
        output.error_line(
            f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__,
            kind="internal error",
        )
        return EXIT_ERROR


def entry() -> None:
    """The ``dalfleet`` console script and ``python -m dalfleet``: :func:`main` on
    ``sys.argv[1:]``, then exit with its status.

    Once the command is done, exit handlers run and the output is flushed, and the
    process ends without the interpreter freeing every object it holds one by one:
    after a command on a large fleet file that teardown was about 13 ms, a fifth of
    a deploy on 1,000 fleets. When a thread other than a daemon is still running, or
    flushing fails, it exits the ordinary way instead.

    Raises:
        SystemExit: always (the exit status), when the ordinary way is taken.
    """
    code = main()
    threading = sys.modules.get("threading")
    if threading is not None and any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        sys.exit(code)
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # pragma: no cover - not CPython
        sys.exit(code)
    try:
        run_exit_handlers()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # as the ordinary exit would: it reports the failure itself
        sys.exit(code)
    os._exit(code)

"""Running a typer app as a command: what each of ``matchhub``, ``matchhub-connect`` and
``matchhub-desk`` does with a usage error.

A usage error (no arguments, an unknown command, a missing option, a bad value, an option
without its value) is one ``Error:`` line after the usage of the command it concerns and exit
status 2, never a traceback. typer 0.29 vendors click and raises its own exceptions
(``typer.TyperException``); some of them carry no context (an option given without its value
fails in the parser, before the command's context exists), so the usage is worked out here from
the arguments.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer

USAGE_ERROR = 2


def invoke(app: typer.Typer, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run ``app`` on ``argv`` (default: the process's arguments) without click's standalone
    handling and return the exit status: the command's own errors (and ``typer.Abort``)
    propagate to the caller; a usage error is shown here and is status 2."""
    command = typer.main.get_command(app)
    _no_help_screen_for_no_args(command)
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except typer.TyperException as exc:
        show_usage_error(command, prog_name, args, exc)
        return int(getattr(exc, "exit_code", USAGE_ERROR) or USAGE_ERROR)
    return code if isinstance(code, int) else 0


def show_usage_error(
    command: Any, prog_name: str, args: Sequence[str], exc: typer.TyperException
) -> None:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None) or _context_of(command, prog_name, args)
    if ctx is not None:
        path = ctx.command_path
        typer.echo(f"{ctx.get_usage()}\nTry '{path} --help' for help.\n", err=True)
    typer.echo(f"Error: {message}", err=True)


def _no_help_screen_for_no_args(command: Any) -> None:
    """A group given no command (``matchhub``, ``matchhub agency``) fails like any other usage
    error, "Missing command." under its usage, rather than printing the whole help screen."""
    for group in _groups(command):
        group.no_args_is_help = False


def _groups(command: Any) -> Iterator[Any]:
    commands = getattr(command, "commands", None)
    if commands is not None:
        yield command
        for sub in commands.values():
            yield from _groups(sub)


def _context_of(command: Any, prog_name: str, args: Sequence[str]) -> Any:
    """The context of the deepest (sub)command named in ``args``, for its usage line."""
    ctx = command.make_context(prog_name, [], resilient_parsing=True)
    for arg in args:
        commands = getattr(ctx.command, "commands", None)
        if commands is None:  # a command, not a group: this is the one
            break
        sub = commands.get(arg)
        if sub is not None:  # anything else is a group's option or its value (--home X)
            ctx = sub.make_context(arg, [], parent=ctx, resilient_parsing=True)
    return ctx


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket on ``host``:``port``, for a server that says it serves only once the
    port is its own (``matchhub serve``, ``matchhub-desk serve``). Raises :class:`OSError`: a
    port in use, an address this machine does not have."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)

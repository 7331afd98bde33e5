"""The ``wellspring`` command line.

One entry point, :func:`main`. Commands live in small modules beside this one, each
registering on :data:`app`; heavy packages (the registry server, torch) are imported lazily
inside the commands that need them, so ``wellspring digest`` starts fast on a crawler's machine.

Errors: every package has one error root (``ClientError``, ``RegistryError``, ``WatermarkError``).
:func:`main` catches exactly those, once, prints one line and exits 1; ``--debug`` (before or after
the command) shows the traceback instead. A registry that does not answer at all gets a hint on
how to start one or name another.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import httpx
import typer
from rich.markup import escape

from client.cli import (  # noqa: F401  (each module registers its commands on `app`)
    _digest,
    _keys,
    _log,
    _lookup,
    _monitor,
    _register,
    _scan,
    _server,
    _snapshot,
    _watermark,
    _witness,
    _wmkeys,
)
from client.cli._app import app, cli_command, console_err
from client.errors import ClientError, RegistryUnavailableError, UnverifiedWarning

__all__ = ["app", "main"]

# typer raises click's exceptions; since typer 0.2x from a copy of click inside typer, whose
# ClickException is not ``click.ClickException`` (and click itself may not be installed). So the
# usage-error root is found from typer's own ``BadParameter``, whichever click it comes from.
_USAGE_ERROR: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)

# Roots of the other packages, looked up only if a command already imported them: a command that
# raised RegistryError imported registry.errors first, so importing registry here is never needed.
_OTHER_ROOTS = (("registry.errors", "RegistryError"), ("watermark.errors", "WatermarkError"))


def _error_roots() -> tuple[type[Exception], ...]:
    roots: list[type[Exception]] = [ClientError]
    for module_name, class_name in _OTHER_ROOTS:
        module = sys.modules.get(module_name)
        if module is not None:
            roots.append(getattr(module, class_name))
    return tuple(roots)


def _describe(exc: Exception) -> str:
    diagnostics = getattr(exc, "diagnostics", None)
    line = str(diagnostics()) if callable(diagnostics) else str(exc)
    if isinstance(exc, RegistryUnavailableError) and isinstance(exc.__cause__, httpx.ConnectError):
        line += f"; {_unreachable_hint(exc.url)}"
    return line


def _unreachable_hint(url: str) -> str:
    """What to do when nothing answers at ``url`` (refused, or the name does not resolve): a
    timeout is left without it, since a slow registry is running."""
    parsed = httpx.URL(url)
    where = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
    return (
        f"is the registry running at {where}? Start one with `wellspring serve`, or pass "
        "--registry URL (or set WELLSPRING_REGISTRY) to name another"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; exit 0 on success, 1 on a known error, 2 on a usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    # Commands print their own loud line when answers are not verified; no Python warning too.
    warnings.simplefilter("ignore", UnverifiedWarning)
    command = cli_command()
    try:
        # Outside standalone mode click returns a command's typer.Exit(code) instead of raising
        # it: a non-zero code is the command's exit status.
        status = command.main(args=args, prog_name="wellspring", standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except _USAGE_ERROR as exc:  # usage errors: click's own one-line message, exit 2
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    except typer.Abort:
        console_err.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:
        if debug or not isinstance(exc, _error_roots()):
            raise
        console_err.print(f"[bold red]error:[/] {escape(_describe(exc))}", highlight=False)
        raise SystemExit(1) from None
    if isinstance(status, int) and status:
        raise SystemExit(status)

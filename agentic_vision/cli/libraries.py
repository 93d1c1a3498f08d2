"""Command-line options for extra libraries: `--with`/`--requirements` on `sandbox setup`
and `sandbox build`, `--libraries` on the commands that run code."""

from __future__ import annotations

import click

from ..sandboxing.extras import LibrarySet, PackageSource, library_set


def libraries_option(f):
    """``--libraries SPEC`` (repeatable): run with the extras set up / built for this set."""
    return click.option(
        "--libraries", "libraries", multiple=True, metavar="PKG[==VER]",
        help="Extra libraries the sandbox has (repeatable), as set up with 'sandbox setup --with' "
             "(local) or built with 'sandbox build --with' (Docker); default: the hosted libraries only.",
    )(f)


def extras_options(f):
    """``--with``, ``--requirements``, ``--find-links``, ``--index-url``, ``--no-index``."""
    for option in reversed([
        click.option("--with", "with_", multiple=True, metavar="PKG[==VER]",
                     help="An extra library to add, in its own environment next to the default one (repeatable)."),
        click.option("--requirements", "requirements", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="Extra libraries from a requirements file."),
        click.option("--find-links", "find_links", multiple=True, metavar="DIR|URL",
                     help="Where pip also looks for packages: a folder of wheels (repeatable)."),
        click.option("--index-url", default=None, metavar="URL", help="A package index instead of PyPI."),
        click.option("--no-index", is_flag=True, help="Do not use any index: only --find-links."),
    ]):
        f = option(f)
    return f


def extras_from(with_, requirements, find_links, index_url, no_index) -> tuple[LibrarySet, PackageSource]:
    """The set and where pip gets it; index options without a set are a usage error."""
    libs = library_set(list(with_), requirements)
    source = PackageSource(tuple(find_links), index_url, no_index)
    if not libs and (find_links or index_url or no_index):
        raise click.UsageError("--find-links, --index-url and --no-index are for --with/--requirements")
    if libs:
        source.check()
    return libs, source


def describe_installed(installed: list[dict]) -> str:
    return ", ".join(f"{d['distribution']} {d['version']}" for d in installed) or "nothing beyond the default"

"""``gcauth config set|get|unset project``: gcloud's ``core/project`` property, in gcloud's own
files, without gcloud.

The value lives where gcloud keeps it: the properties file of the active configuration,
``$CLOUDSDK_CONFIG/configurations/config_<name>`` (an INI file; ``[core]``, ``project = P``),
the name coming from ``CLOUDSDK_ACTIVE_CONFIG_NAME``, else the ``active_config`` file, else
``default``. ADC's project discovery (``gcauth.default()``, ``gcauth explain``) and
``gcauth auth application-default login``'s quota project read it from there, and so does
gcloud. Writes are atomic (a temporary file renamed into place) and keep every other
property and section of the file.
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..exceptions import DefaultCredentialsError, UsageError

#: The properties this command knows, by the names gcloud accepts for them.
PROPERTIES = {"project": ("core", "project"), "core/project": ("core", "project")}


def register(commands: Any) -> None:
    from ._common import EXIT_CODES, formatter

    config: argparse.ArgumentParser = commands.add_parser(
        "config", help="set, get or unset gcloud's core/project (gcloud's own files)",
        formatter_class=formatter,
        description="Read and write gcloud's core/project property in the active gcloud "
                    "configuration\n($CLOUDSDK_CONFIG/configurations/config_<name>), as "
                    "`gcloud config` does. ADC's project\ndiscovery and `gcauth auth "
                    "application-default login` (its quota project) read it.",
        epilog=EXIT_CODES)
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    config_commands.required = True
    for name, help_text in (("set", "set a property: gcauth config set project PROJECT"),
                            ("get", "print a property's value (nothing, and '(unset)' on "
                                    "stderr, when unset)"),
                            ("unset", "remove a property")):
        parser: argparse.ArgumentParser = config_commands.add_parser(
            name, help=help_text, formatter_class=formatter, epilog=EXIT_CODES,
            description=f"gcauth config {name} project{' PROJECT' if name == 'set' else ''}: "
                        f"{help_text}.\nOnly the project property (core/project) is "
                        "supported.")
        parser.add_argument("property", metavar="PROPERTY", help="project (or core/project)")
        if name == "set":
            parser.add_argument("value", metavar="VALUE", help="the project id")
        parser.set_defaults(handler=run, action=name)


def _property(name: str) -> tuple[str, str]:
    from ._common import terminal_safe

    if name not in PROPERTIES:
        raise UsageError(f"unknown property {terminal_safe(name)[:60]!r}: gcauth config knows "
                         "only project (core/project).\nFix: gcauth config set project "
                         "PROJECT; use gcloud for other properties.")
    return PROPERTIES[name]


def properties_file(environ: Any = None) -> Path:
    """The properties file of gcloud's active configuration (it may not exist yet)."""
    from .._default import active_config_name, gcloud_config_dir, is_config_name

    env = os.environ if environ is None else environ
    name, chosen_by = active_config_name(env)
    if not is_config_name(name):
        from ._common import terminal_safe

        raise DefaultCredentialsError(
            f"the active gcloud configuration name {terminal_safe(name)[:60]!r} (from "
            f"{chosen_by}) is not a valid configuration name (lower-case letters, digits and "
            "hyphens). Fix: set CLOUDSDK_ACTIVE_CONFIG_NAME to a valid name, or put one in "
            f"{gcloud_config_dir(env) / 'active_config'}.")
    return gcloud_config_dir(env) / "configurations" / f"config_{name}"


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names as written
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise DefaultCredentialsError(
            f"cannot read gcloud's properties file {path} ({reason}). Fix: repair it (an INI "
            "file with a [core] section), or delete it.") from None
    return parser


def _write(path: Path, parser: configparser.ConfigParser) -> None:
    from .. import _files
    from .._default import gcloud_config_dir

    text = io.StringIO()
    parser.write(text)
    try:
        _files.make_private_dir(gcloud_config_dir())  # 0700, as a login creates it
        _files.write_private_text(path, text.getvalue())
        active = gcloud_config_dir() / "active_config"
        if not os.environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME") and not active.exists():
            _files.write_private_text(active, path.name.removeprefix("config_"))
    except OSError as exc:
        raise DefaultCredentialsError(
            f"cannot write gcloud's properties file {path} ({exc.strerror or exc}). Fix: make "
            f"{path.parent} writable, or set CLOUDSDK_CONFIG to a writable directory.") from None


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from ._auth import check_project
    from ._common import terminal_safe

    out = out or sys.stdout
    err = err or sys.stderr
    section, option = _property(args.property)
    overridden = os.environ.get("CLOUDSDK_CORE_PROJECT")
    if args.action == "get":
        if overridden:
            out.write(terminal_safe(overridden) + "\n")
            err.write("(from CLOUDSDK_CORE_PROJECT, which overrides the configuration file)\n")
            return 0
        path = properties_file()
        value = _read(path).get(section, option, fallback="").strip()
        if value:
            out.write(terminal_safe(value) + "\n")
        else:
            err.write("(unset)\n")
        return 0
    path = properties_file()
    parser = _read(path)
    if args.action == "set":
        value = check_project(args.value, "PROJECT")
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, option, value)
        _write(path, parser)
        err.write(f"Updated property [{section}/{option}] in {path}.\n")
    else:
        if parser.has_option(section, option):
            parser.remove_option(section, option)
            _write(path, parser)
            err.write(f"Unset property [{section}/{option}] in {path}.\n")
        else:
            err.write(f"Property [{section}/{option}] was not set in {path}.\n")
    if overridden:
        err.write(f"gcauth: warning: CLOUDSDK_CORE_PROJECT is set "
                  f"({terminal_safe(overridden)[:100]}) and overrides this file; unset it for "
                  "the file's value to apply.\n")
    return 0

"""Executable-sourced credentials: a program of yours prints the subject token.

::

    # GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 must be set: a credential file decides
    # which program runs, so gcauth runs none unless you say so.
    from gcauth import pluggable
    credentials = pluggable.Credentials.from_file("executable-wif.json")

``credential_source`` (as gcloud writes it)::

    {"executable": {"command": "/usr/local/bin/get-token --audience=gcp",
                    "timeout_millis": 5000,
                    "output_file": "/tmp/gcp-token.json"}}

The command is split like a shell would (no shell runs it) and started without stdin, in its
own process group; it must print Google's executable response on stdout::

    {"version": 1, "success": true, "token_type": "urn:ietf:params:oauth:token-type:id_token",
     "id_token": "...", "expiration_time": 1767225600}

(``saml_response`` for SAML; ``{"version": 1, "success": false, "code": "...", "message":
"..."}`` on failure). ``timeout_millis`` (5000 to 120000, default 30000) is enforced: the
whole process group is killed at the deadline. With ``output_file``, a still-valid response
the executable saved there is used without running it again (``expiration_time`` is then
required). The program gets ``GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE``, ``_TOKEN_TYPE``,
``_INTERACTIVE`` (always ``0``: gcauth runs executables non-interactively),
``_IMPERSONATED_EMAIL`` and ``_OUTPUT_FILE`` in its environment, and does *not* inherit
the parent's Google credential variables (``GOOGLE_APPLICATION_CREDENTIALS`` and the like;
see ``gcauth._executable.WITHHELD_VARIABLES``) unless you name them in
``pass_environment=[...]``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import _executable
from ._checks import terminal_safe
from ._http import Flow
from .exceptions import RefreshError
from .external_account import GOOGLE_STS_TOKEN_URL, _malformed, blocking_step, checked_subject_token
from .external_account import Credentials as _External

__all__ = ["ALLOW_EXECUTABLES", "Credentials"]

ALLOW_EXECUTABLES = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"


class Credentials(_External):
    """``external_account`` credentials whose subject token an executable prints."""

    source_kind = "executable"

    def __init__(
        self,
        audience: str,
        subject_token_type: str,
        token_url: str = GOOGLE_STS_TOKEN_URL,
        credential_source: Mapping[str, Any] | None = None,
        *args: Any,
        pass_environment: Sequence[str] = (),
        **kwargs: Any,
    ):
        super().__init__(audience, subject_token_type, token_url, credential_source, *args,
                         **kwargs)
        source = self._where
        executable = credential_source.get("executable") if isinstance(
            credential_source, Mapping) else None
        if not isinstance(executable, Mapping):
            raise _malformed(source, "credential_source.executable",
                             "is missing: it must be an object with 'command' (and optionally "
                             "'timeout_millis', 'output_file').")
        command = executable.get("command")
        if not isinstance(command, str) or not command.strip():
            raise _malformed(source, "credential_source.executable.command",
                             "must be the command line to run (a string).")
        try:
            argv = shlex.split(command)
        except ValueError:
            raise _malformed(source, "credential_source.executable.command",
                             "is not a valid command line (unbalanced quotes?).") from None
        if not argv:
            raise _malformed(source, "credential_source.executable.command",
                             "must name a program.")
        self._command = command
        self._program = argv[0]
        self._timeout_s = _executable.check_timeout_millis(
            executable.get("timeout_millis"), field="credential_source.executable."
            "timeout_millis", origin=source)
        output = executable.get("output_file")
        if output is not None and (not isinstance(output, str) or not output or "\0" in output):
            raise _malformed(source, "credential_source.executable.output_file",
                             "must be a file path.")
        self._output_file: str | None = output or None
        if isinstance(pass_environment, str) or not all(
                isinstance(name, str) for name in pass_environment):
            raise _malformed(source, "pass_environment", "must be a list of variable names.")
        self._pass_environment = tuple(pass_environment)

    @property
    def command(self) -> str:
        return self._command

    @property
    def output_file(self) -> str | None:
        return self._output_file

    @property
    def timeout_millis(self) -> int:
        return int(self._timeout_s * 1000)

    def subject_token_flow(self, now: datetime) -> Flow[str]:
        origin = (f"the executable {terminal_safe(self._program[:200])!r} "
                  f"(credential_source.executable.command of {self._where})")
        at = now.timestamp()

        def work() -> _executable.ExecutableResponse:
            _executable.check_allowed(os.environ, origin=origin)
            if self._output_file:
                cached = _executable.load_output_file(self._output_file, origin=origin, now=at)
                if cached is not None:
                    return cached
            env = _executable.child_environment(
                os.environ, audience=self._audience, token_type=self._subject_token_type,
                impersonated_email=self._impersonated_email, output_file=self._output_file,
                pass_through=self._pass_environment)
            data = _executable.run(self._command, timeout=self._timeout_s, env=env,
                                   origin=origin)
            if not data.strip() and self._output_file:  # it answered in the output file only
                saved = _executable.load_output_file(self._output_file, origin=origin, now=at)
                if saved is not None:
                    return saved
            return _executable.parse_response(data, origin=origin, now=at,
                                              require_expiration=bool(self._output_file))

        response = yield blocking_step(work)
        assert isinstance(response, _executable.ExecutableResponse)
        if response.token_type != self._subject_token_type:
            raise RefreshError(
                f"{origin} returned a token of type {terminal_safe(response.token_type[:80])!r}"
                f", but the configuration's subject_token_type is "
                f"{self._subject_token_type!r}. Make them agree.")
        return checked_subject_token(response.subject_token, origin)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(executable=self._program, timeout_millis=self.timeout_millis,
                    output_file=self._output_file,
                    executables_allowed=os.environ.get(ALLOW_EXECUTABLES) == "1")
        return info

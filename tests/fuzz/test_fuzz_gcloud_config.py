"""gcloud configuration files fuzzed: ``gcloud_project`` reads whatever is in the config
directory and never raises (a broken gcloud config just means "no project from gcloud")."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from gcauth._default import find_default, gcloud_project

from .strategies import FUZZ

ini_lines = st.sampled_from(["[core]", "[compute]", "[core", "project = p", "project=",
                             "project: q", "  project = indented", "account = a@b", "%(x)s",
                             "project = %(y)s", "[core]\n[core]", "project = a\nproject = b",
                             "\x00", "\ufeff[core]", "= no key", "[]", "#comment", ";c"])
ini_text = st.lists(ini_lines | st.text(max_size=30), max_size=8).map("\n".join)
file_bytes = ini_text.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=80)
names = st.text(max_size=20) | st.sampled_from(["default", "", "../x", "a/b", "\x00", "..",
                                                ".", "config_default", " spaced "])


@FUZZ
@given(file_bytes, file_bytes, file_bytes, names, st.none() | names)
@example(b"[core]\nproject = p", b"", b"x\x00y", "", None)  # NUL in active_config
@example(b"", b"", b"", "", "a\x00b")  # NUL in CLOUDSDK_ACTIVE_CONFIG_NAME
def test_gcloud_project_never_raises(properties: bytes, config: bytes, active: bytes,
                                     name: str, env_name: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "configurations").mkdir()
        (root / "properties").write_bytes(properties)
        (root / "active_config").write_bytes(active)
        if "/" not in name and "\x00" not in name and name not in ("", ".", ".."):
            (root / "configurations" / f"config_{name}").write_bytes(config)
        env = {"CLOUDSDK_CONFIG": tmp}
        if env_name is not None:
            env["CLOUDSDK_ACTIVE_CONFIG_NAME"] = env_name
        project, where = gcloud_project(env)
        assert project is None or (isinstance(project, str) and project.strip() == project)
        assert (project is None) == (where is None)


@FUZZ
@given(file_bytes)
def test_adc_discovery_with_a_broken_gcloud_dir_raises_only_gcauth_errors(data: bytes) -> None:
    from gcauth.exceptions import GCAuthError

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "application_default_credentials.json").write_bytes(data)
        (Path(tmp) / "properties").write_bytes(data)
        try:
            find_default(environ={"CLOUDSDK_CONFIG": tmp, "NO_GCE_CHECK": "1"})
        except GCAuthError:
            pass

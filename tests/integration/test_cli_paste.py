"""``login --no-browser`` (issue 13, item 3): every paste is checked on this machine first, three
tries in all, and only a paste that passed reaches the token endpoint. The CLI runs as a
subprocess; each test's own emulator counts the token requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.kit.cli import Cli, adc_path, cli_env, consent

LOGIN = ["auth", "application-default", "login", "--no-browser"]


@pytest.fixture
def login(fresh_emulator: Any, tmp_path: Path) -> tuple[Cli, dict[str, str], str]:
    path = tmp_path / "client.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client()))
    env = cli_env(tmp_path)
    cli = Cli([*LOGIN, f"--client-id-file={path}"], env)
    return cli, env, cli.url_line()


def retry_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "That did not work:" in line]


def test_a_typo_is_caught_here_and_asked_again(fresh_emulator: Any,
                                               login: tuple[Cli, dict[str, str], str]) -> None:
    cli, env, url = login
    cli.send("garbage\n")
    cli.send(consent(url) + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    [complaint] = retry_lines(out)
    assert "neither an authorization code" in complaint and "2 tries left" in complaint
    assert fresh_emulator.counts["token"] == 1  # only the good paste was sent
    assert json.loads(adc_path(env).read_text())["type"] == "authorized_user"


def test_an_address_without_a_code_says_so(fresh_emulator: Any,
                                           login: tuple[Cli, dict[str, str], str]) -> None:
    cli, _, url = login
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    cli.send(redirect + "\n")  # the page the browser was sent to, its query lost
    cli.send(url + "\n")  # the sign-in address itself
    cli.send(consent(url) + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    first, second = retry_lines(out)
    assert ("that address has no code; paste the whole address from the browser's address "
            "bar") in first
    assert "state" not in first  # not reported as a state mismatch
    assert "that is the sign-in address itself" in second
    assert fresh_emulator.counts["token"] == 1


def test_the_third_bad_paste_ends_the_login(fresh_emulator: Any,
                                            login: tuple[Cli, dict[str, str], str]) -> None:
    cli, env, url = login
    good = consent(url)
    forged = good.replace("state=", "state=x")
    for paste in ("garbage", "http://localhost:1/?scope=openid", forged):
        cli.send(paste + "\n")
    code, out, err = cli.finish()
    assert code == 1
    assert len(retry_lines(out)) == 2
    assert err.startswith("gcauth: error: the redirect's state does not match this login")
    assert "That was the last of 3 tries" in err and "run the login again" in err
    assert err.count("\n") == 1
    assert fresh_emulator.counts["token"] == 0  # nothing unchecked was ever sent
    assert not adc_path(env).exists()


def test_a_bare_code_from_the_address_bar_works(fresh_emulator: Any,
                                                login: tuple[Cli, dict[str, str], str]) -> None:
    cli, _, url = login
    code_value = parse_qs(urlsplit(consent(url)).query)["code"][0]
    cli.send(code_value.replace("/", "%2F") + "\n")  # copied percent-encoded
    code, out, err = cli.finish()
    assert code == 0, err
    assert fresh_emulator.counts["token"] == 1 and not retry_lines(out)

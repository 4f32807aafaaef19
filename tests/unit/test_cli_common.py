"""The CLI's shared helpers: printing untrusted text safely, parsing --timeout."""

from __future__ import annotations

import argparse
import io

import pytest

from gcauth.cli._common import SafeText, parse_scopes, seconds, terminal_safe
from gcauth.exceptions import FlowError


@pytest.mark.parametrize(("text", "single", "multi"), [
    ("plain text, é ü 日本", "plain text, é ü 日本", "plain text, é ü 日本"),
    ("a\x1b[31mred\x1b[0m", "a[31mred[0m", "a[31mred[0m"),
    ("title\x1b]0;owned\x07done", "title]0;owneddone", "title]0;owneddone"),
    ("over\rwrite", "overwrite", "overwrite"),
    ("two\nlines", "two lines", "two\nlines"),
    ("crlf\r\nline", "crlf line", "crlf\nline"),
    ("tab\there", "tab here", "tab here"),
    ("back\x08space\x7f\x00", "backspace", "backspace"),
    ("c1\x9b2J\x85x", "c12J x", "c12J x"),
    ("bidi\u202egnp.exe\u2066", "bidignp.exe", "bidignp.exe"),
    ("sep\u2028x", "sep x", "sep x"),
])
def test_terminal_safe(text: str, single: str, multi: str) -> None:
    assert terminal_safe(text) == single
    assert terminal_safe(text, multiline=True) == multi


def test_safe_text_cleans_what_is_written_through_it() -> None:
    sink = io.StringIO()
    stream = SafeText(sink).stream()
    stream.write("code:\n\x1b[8mAB-CD\x1b[0m\n")
    stream.flush()
    assert sink.getvalue() == "code:\n[8mAB-CD[0m\n"


@pytest.mark.parametrize("value", ["300", "0.5", "1e3"])
def test_seconds_accepts_positive_finite_numbers(value: str) -> None:
    assert seconds(value) == float(value)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity", "0", "-0", "-1",
                                   "", "soon", "1e400"])
def test_seconds_refuses_the_rest(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(value)


def test_parse_scopes() -> None:
    assert parse_scopes(None, ("a",)) == ["a"]
    assert parse_scopes("a, b c", ()) == ["a", "b", "c"]
    with pytest.raises(FlowError, match="empty"):
        parse_scopes(" , ", ())

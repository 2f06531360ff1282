"""The ``user:password@host`` scan stays linear in a word of many ``@`` before one ``?``.

For each ``@`` whose host may follow (a word character after it), :func:`mask_userinfo`
asked whether the text up to the next ``/``, ``?`` or ``#`` reads as a host, by copying that
text: a word ``a:`` + ``b@c`` × n + ``.?x`` copied ~n²/2 characters (0.15 s at 192 KB,
2.3 s at 768 KB, ~2.5 min at 6 MB: a library's error text or a response body in an
exception is logged whole). The last ``.`` or ``:`` before that separator is now found once
per stretch. pytest-timeout (60 s here) is what fails on the quadratic scan."""

from __future__ import annotations

import pytest

from monitor.logs import redact

N = 2_000_000  # '@'s: the words below are 4 and 6 million characters


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # each '@' has a host after it and the stretch a '.' at its end: masked from the
        # first '@' (the password runs to the last '@' before the query)
        ("a:" + "b@c" * N + ".?x", "a:***@c.?x"),
        # the same without a '.' or ':' before the '?': no host name, still masked
        ("a:" + "@c" * N + "?x", "a:***@c?x"),
    ],
    ids=["hosts-then-dot", "hosts-no-dot"],
)
def test_a_word_of_millions_of_ats_before_a_query_is_scanned_in_linear_time(
    text: str, expected: str
) -> None:
    assert redact(text) == expected

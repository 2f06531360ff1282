"""The base the Bybit and OKX key clients share (monitor/venues/signed.py): the error ladder
from each venue's table of codes (first match wins), and, against the loopback venues, the
clock resync and the signed GET with their failures named."""

from __future__ import annotations

import json

import pytest

from monitor.clock import SystemClock
from monitor.errors import RetryableError
from monitor.venues.bybit import private as bybit
from monitor.venues.keys import (
    KeyRejected,
    KeySettings,
    RateLimited,
    TimestampRejected,
    VenueUnavailable,
)
from monitor.venues.okx import private as okx
from monitor.venues.parsing import Bad
from monitor.venues.signed import AnswerCodes, SignedPrivate, classify_answer, retryable
from tests.venues.cex import test_bybit, test_okx
from tests.venues.cex.bybit_mock import BybitMock
from tests.venues.cex.okx_mock import OkxMock

NO_WAIT = {"Retry-After": "3"}


def ladder(codes: AnswerCodes, status: int, code: str | None) -> Exception | None:
    return classify_answer(status, NO_WAIT, code, "m", codes, rate_wait=lambda: 7.0)


@pytest.mark.parametrize("codes", [bybit.CODES, okx.CODES], ids=["bybit", "okx"])
def test_the_ladder_takes_the_first_match_in_the_documented_order(codes: AnswerCodes) -> None:
    [ts] = codes.timestamp
    auth = min(codes.auth)
    rate = min(codes.rate)
    busy = min(codes.busy)
    assert ladder(codes, 200, codes.ok) is None
    assert ladder(codes, 500, codes.ok) is not None  # a 5xx is never a success
    # OKX answers a stale timestamp with HTTP 401: the code wins over the status
    assert isinstance(ladder(codes, 401, ts), TimestampRejected)
    assert isinstance(ladder(codes, 401, rate), KeyRejected)  # 401 beats a rate code
    assert isinstance(ladder(codes, 503, auth), KeyRejected)  # an auth code beats a 5xx
    limited = ladder(codes, 200, rate)
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0  # rate_wait()
    busy_err = ladder(codes, 200, busy)
    assert isinstance(busy_err, VenueUnavailable) and busy_err.retry_after == 3.0  # Retry-After
    other = ladder(codes, 400, "99999")
    assert type(other) is RetryableError
    assert str(other) == f"HTTP 400 {codes.label} 99999 m"


def test_bybit_waits_until_its_reset_time_measured_on_the_answers_clock() -> None:
    # reset at …2500 ms, answer's own time …1000 ms: wait 1.5 s, whatever our clock says
    err = bybit.classify(
        200,
        {"X-Bapi-Limit-Reset-Timestamp": "1700000002500"},
        json.dumps({"retCode": 10018, "retMsg": "ip limited", "time": 1_700_000_001_000}),
    )
    assert isinstance(err, RateLimited) and err.retry_after == pytest.approx(1.5)
    # a string retCode is not Bybit's: not a code, so not a success either
    assert isinstance(bybit.classify(200, {}, '{"retCode":"0"}'), RetryableError)


def test_a_malformed_document_is_a_retryable_error_naming_what_was_read() -> None:
    expected = r"^okx account: positions\[0\]: not an object$"
    with pytest.raises(RetryableError, match=expected), retryable("okx account"):
        raise Bad("positions[0]: not an object")


def clients(by: BybitMock, ok: OkxMock) -> list[tuple[SignedPrivate, BybitMock | OkxMock]]:
    settings = KeySettings()
    return [
        (bybit.BybitPrivate(test_bybit.account(by), SystemClock(), settings), by),
        (okx.OkxPrivate(test_okx.account(ok), SystemClock(), settings), ok),
    ]


async def test_a_venue_time_without_a_time_is_named_and_retryable() -> None:
    async with (
        BybitMock(test_bybit.KEY, test_bybit.SECRET) as by,
        OkxMock(test_okx.KEY, test_okx.SECRET, test_okx.PASS) as ok,
    ):
        by.fault("/v5/market/time", 200, {"retCode": 0, "retMsg": "OK", "result": {}})
        ok.fault("/api/v5/public/time", 200, {"code": "0", "msg": "", "data": []})
        for client, _ in clients(by, ok):
            try:
                with pytest.raises(RetryableError, match=f"^GET {client.TIME_PATH}: no server"):
                    await client.permissions()
                # the next resync reads the real time and the signed call is accepted
                perms = await client.permissions()
                assert perms.read_only, perms.detail
            finally:
                await client.aclose()


async def test_a_signed_get_whose_payload_is_malformed_is_retryable_naming_the_path() -> None:
    async with (
        BybitMock(test_bybit.KEY, test_bybit.SECRET) as by,
        OkxMock(test_okx.KEY, test_okx.SECRET, test_okx.PASS) as ok,
    ):
        answers = [  # a success code, but the payload is not the documented shape
            ("/v5/user/query-api", {"retCode": 0, "retMsg": "OK", "result": "none"}),
            ("/api/v5/account/config", {"code": "0", "msg": "", "data": {"perm": "read_only"}}),
        ]
        for (client, mock), (path, answer) in zip(clients(by, ok), answers, strict=True):
            mock.fault(path, 200, answer)
            try:
                with pytest.raises(RetryableError, match=f"^{path}: {path}.(result|data)"):
                    await client.permissions()
                assert mock.calls("GET", path) == 1
            finally:
                await client.aclose()

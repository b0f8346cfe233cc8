from __future__ import annotations

from fedrisk.strategies.messages import error_summary


def test_a_wrapped_client_app_exception_keeps_only_its_message() -> None:
    reason = (
        "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'\x1b[36mray::Actor\x1b[39m\n"
        '  File "client_app.py", line 161, in __call__\n'
        "Exception ClientAppException occurred. Message: bank_b has no data file\n'>"
    )

    assert error_summary(reason) == "bank_b has no data file"


def test_a_plain_reason_keeps_its_last_line_and_none_says_unknown() -> None:
    assert error_summary("first\n\nsecond line\n") == "second line"
    assert error_summary(None) == "unknown error"
    assert error_summary("") == "unknown error"

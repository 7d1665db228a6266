"""When the waiting room hands a connection to a worker: the pure readiness rule."""

from app.fileserver import JSON, STREAM, Limits, Ready, nothing_asked, request_state


def test_a_stream_request_is_ready_with_its_whole_header_or_when_too_long():
    assert request_state(STREAM, b"") == "wait"
    assert request_state(STREAM, b"GET a.bin\r\n") == "wait"
    assert request_state(STREAM, b"GET a.bin\r\n\r\n") == "ready"
    assert request_state(STREAM, b"UPLOAD a.bin 8\r\n\r\nQUJD") == "ready"
    assert request_state(STREAM, b"G" * 9000) == "ready"  # a worker answers Header too large


def test_a_json_request_is_ready_framed_bare_or_at_an_upload_head():
    assert request_state(JSON, b"\r\n\r\n") == "wait"
    assert request_state(JSON, b"LIST") == "bare"  # whole once the client is quiet
    assert request_state(JSON, b"LIST\r\n\r\n") == "ready"
    assert request_state(JSON, b"UPLOAD a.bin QUJD") == "ready"  # the body is a worker's
    assert request_state(JSON, b"UPLOAD a.bin") == "wait"


def test_nothing_asked_and_the_header_deadline():
    assert nothing_asked(Ready(JSON, ("h", 1), b" \r\n"))
    assert not nothing_asked(Ready(STREAM, ("h", 1), b"\r\n"))
    assert Limits(idle=2, header=10).header_deadline == 2
    assert Limits(idle=60, header=10).header_deadline == 10

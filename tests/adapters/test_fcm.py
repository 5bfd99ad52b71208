"""The FCM adapter: an UNREGISTERED token is a permanent failure; other errors keep their text."""

from __future__ import annotations

from adapters.fcm import _unregistered


def test_unregistered_is_read_from_the_error_details():
    doc = {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                     "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                  "errorCode": "UNREGISTERED"}]}}
    assert _unregistered(doc)
    assert not _unregistered({"error": {"code": 400, "details": [{"errorCode": "INVALID_ARGUMENT"}]}})
    assert not _unregistered({"error": {"code": 400, "message": "bad"}})
    assert not _unregistered("not json") and not _unregistered(None)

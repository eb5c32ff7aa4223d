"""Unit tests of the SDK's requests-like HTTP client (cairn_sdk.http) that
need no host: headers, responses, and the refusal outside an activity build
with wasi:http. The requests themselves are tested end to end
(tests/e2e/guest_io.rs)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fake_host import host  # noqa: E402,F401  (must come before cairn_sdk)

from cairn_sdk import http  # noqa: E402


class HttpClientTests(unittest.TestCase):
    def test_headers_are_case_insensitive_and_join_repeats(self):
        h = http.Headers([("Content-Type", "application/json"), ("set-cookie", "a=1"), ("Set-Cookie", "b=2")])
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h.get("CONTENT-TYPE"), "application/json")
        self.assertEqual(h["SET-COOKIE"], "a=1, b=2")
        self.assertIn("Content-type", h)
        self.assertIsNone(h.get("x-missing"))

    def test_response_text_json_and_status(self):
        r = http.Response("http://h/x", 200, http.Headers([("content-type", "application/json; charset=utf-8")]),
                          '{"a": "é"}'.encode())
        self.assertTrue(r.ok)
        self.assertEqual(r.json(), {"a": "é"})
        self.assertEqual(r.text, '{"a": "é"}')
        r.raise_for_status()
        bad = http.Response("http://h/x", 503, http.Headers(), b"down")
        self.assertFalse(bad.ok)
        with self.assertRaises(http.HTTPError) as caught:
            bad.raise_for_status()
        self.assertEqual(caught.exception.error_type, "HTTPError")
        self.assertIn("503", caught.exception.message)
        self.assertIs(caught.exception.response, bad)

    def test_without_wasi_http_requests_fail_with_a_typed_error(self):
        self.assertFalse(http.AVAILABLE)
        with self.assertRaises(http.RequestException) as caught:
            http.get("http://127.0.0.1:8080/")
        self.assertEqual(caught.exception.error_type, "HttpUnavailable")
        self.assertIn("cairn.json", caught.exception.message)


if __name__ == "__main__":
    unittest.main()

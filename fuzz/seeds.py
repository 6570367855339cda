"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Run from anywhere: `python3 fuzz/seeds.py`. Each seed is named by what it holds, so that
a seed found failing reads as a case. Inputs that a fuzzer found failing are kept
beside these, named `crash-*` (written by hand from the crash, not by this script).
"""

import base64
import hashlib
import hmac
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# The socket command parser: what clients send, and what they get wrong.
commands = {
    "create": '{"v": "c"}',
    "register": '{"v": "r", "c": "1"}',
    "dispatch": '{"v": "d", "c": "1", "r": "2", "t": "hello", "p": {"to": "you"}}',
    "broadcast_unicode": '{"v": "b", "c": "1", "t": "h\\u00e9llo", "p": {"to": "you", "n": [1, 2.5, null, "\\u2603"]}}',
    "broadcast_no_payload": '{"v": "b", "c": "1", "t": "no-payload", "p": null}',
    "listen": '{"v": "l", "c": "1", "r": "2"}',
    "watch": '{"v": "w", "c": "1"}',
    "compact": '{"v":"b","c":"1","t":"load","p":{"seq":5}}',
    "ids_as_numbers": '{"v": "d", "c": 1, "r": 2, "t": "t"}',
    "negative_id": '{"v": "r", "c": -1}',
    "float_id": '{"v": "r", "c": 1.5}',
    "null_channel": '{"v": "c", "c": null}',
    "missing_channel": '{"v": "r"}',
    "missing_receiver": '{"v": "l", "c": "1"}',
    "missing_type": '{"v": "b", "c": "1"}',
    "type_not_string": '{"v": "b", "c": "1", "t": 5}',
    "channel_bool": '{"v": "r", "c": true}',
    "verb_number": '{"v": 1}',
    "no_verb": '{"c": "1"}',
    "unknown_verb": '{"v": "x", "t": "a"}',
    "escaped_keys": '{"\\u0076": "\\u0064", "\\u0063": "1", "r": "2", "t": "a\\"b", "p": [1, "x"]}',
    "repeated_keys": '{"v": "c", "v": "w", "c": "1", "c": "2"}',
    "huge_number_ignored_key": '{"v": "w", "c": "c", "vv": {"v": 1e400}}',
    "huge_number_payload": '{"v": "b", "c": "1", "t": "t", "p": 1e400}',
    "floats_payload": '{"v": "b", "c": "1", "t": "t", "p": [0.1, 1e16, 1e-05, -0.0, 5e-324, 1.7976931348623157e308, 123456.789]}',
    "big_ints": '{"v": "b", "c": "1", "t": "t", "p": [18446744073709551615, -9223372036854775808, 18446744073709551616]}',
    "control_chars": '{"v": "b", "c": "1", "t": "a\\r\\nb\\u0000", "p": "\\u007f\\t"}',
    "surrogates": '{"v": "b", "c": "\\ud83d\\ude00", "t": "\\ud800", "p": "\\udfff"}',
    "empty": "",
    "spaces": "   ",
    "not_json": "hello",
    "truncated": '{"v": "b", "c": "1", "t": ',
    "multiline_truncated": "[1,\n\n",
    "array": '["v", "c"]',
    "trailing_data": '{"v": "c"} {"v": "c"}',
    "trailing_newline": '{"v": "c"}\n',
    "deep_payload": '{"v": "b", "c": "1", "t": "t", "p": ' + "[" * 130 + "]" * 130 + "}",
    "key_not_string": "{1: 2}",
    "nul_type": '{"v": "d", "c": "1", "r": "2", "t": "\\u0000"}',
}
for name, text in commands.items():
    write("socket_command", name, text)
write("socket_command", "invalid_utf8", b'{"v": "r", "c": "\xff\xfe"}')
write("socket_command", "latin1_type", b'{"v": "b", "c": "1", "t": "caf\xe9"}')

# The SSE parser: the first byte (modulo 9) is how many u16 cut points follow.
def sse(name, stream, cuts=()):
    data = bytes([len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts)
    write("sse_parser", name, data + (stream.encode("utf-8") if isinstance(stream, str) else stream))

sse("retry_then_event", "retry: 5000\n\nevent: tick\nid: 1\ndata: {\"n\": 1}\n\n")
sse("doc_example", 'id: 1\nevent: tick\ndata: {"n":1}\n\n', cuts=(20,))
sse("multiline_data", "data: a\ndata: b\n\n", cuts=(3, 9))
sse("crlf", "data: x\r\n\r\nid: 7\r\nevent: e\r\ndata: y\r\n\r\n", cuts=(8, 9))
sse("cr_only", "data: x\r\rdata: y\r\r", cuts=(7,))
sse("cr_at_chunk_end", "data: x\r\ndata: y\r\n\r\n", cuts=(8,))
sse("bom", "\ufeffdata: x\n\n", cuts=(1, 2))
sse("bom_twice", "\ufeff\ufeffdata: x\n\n")
sse("comments", ": keep-alive\n:\n: second line\ndata: x\n\n")
sse("keep_alive_only", ":\n\n:\n\n")
sse("id_with_nul", "id: a\x00b\ndata: x\n\n")
sse("id_only_block", "id: 42\n\ndata: y\n\n")
sse("empty_id_resets", "id: 1\ndata: a\n\nid\ndata: b\n\n")
sse("retry_invalid", "retry: 12a\nretry: -1\nretry:\ndata: x\n\n")
sse("retry_huge", "retry: 99999999999999999999999\n\n")
sse("field_no_colon", "data\ndata\n\n")
sse("field_no_space", "data:x\nevent:e\n\n")
sse("two_spaces", "data:  x\n\n")
sse("unknown_field", "foo: bar\ndata: x\n\n")
sse("empty_event_name", "event:\ndata: x\n\n")
sse("unterminated", "data: x\n\ndata: lost")
sse("unterminated_block", "data: x\n")
sse("invalid_utf8", b"data: \xff\xfe\ndata: \xe2\x82\n\n", cuts=(8,))
sse("split_utf8", "data: \u00e9\u2603\U0001f600\n\n", cuts=(7, 9, 12))
sse("mixed_line_ends", "data: a\rdata: b\ndata: c\r\n\n\r\n", cuts=(7, 8))
sse("encoder_output", 'retry: 5000\n\nevent: news\nid: 3\ndata: "a"\n\n: ping\n\n')
sse("many_cuts", "event: e\ndata: 1\n\nevent: f\ndata: 2\n\n", cuts=(1, 2, 3, 5, 8, 13, 21, 34))
sse("empty", "")
sse("only_cut_byte", b"", cuts=())
sse("nul_bytes", b"data: \x00\n\x00\n\n")

# The head reader of the direct stream path.
heads = {
    "stream": "GET /stream/news%20feed/7?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 4\r\n\r\n",
    "watch": "GET /watch/c HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: text/event-stream\r\n\r\n",
    "watch_query_id": "GET /watch/c?last_event_id=0-5 HTTP/1.1\r\nHost: a\r\n\r\n",
    "browser": "GET /watch/c HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nOrigin: http://localhost:8000\r\nConnection: keep-alive\r\n\r\n",
    "content_length_zero": "GET /watch/c HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    "content_length": "GET /watch/c HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    "chunked": "GET /watch/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "expect": "GET /watch/c HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    "upgrade": "GET /watch/c HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "http10": "GET /watch/c HTTP/1.0\r\n\r\n",
    "head_method": "HEAD /watch/c HTTP/1.1\r\n\r\n",
    "post": "POST /broadcast?channel_id=c HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "root": "GET / HTTP/1.1\r\n\r\n",
    "streams_prefix": "GET /streams HTTP/1.1\r\n\r\n",
    "absolute_form": "GET http://a/watch/c HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk": "OPTIONS * HTTP/1.1\r\n\r\n",
    "pipelined": "GET /watch/c HTTP/1.1\r\n\r\nGET /watch/d HTTP/1.1\r\n\r\n",
    "partial": "GET /watch/c HTTP/1.1\r\nHost: a\r\n",
    "lf_only": "GET /watch/c HTTP/1.1\nHost: a\n\n",
    "obs_fold": "GET /watch/c HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    "space_before_colon": "GET /watch/c HTTP/1.1\r\nHost : a\r\n\r\n",
    "empty_header_value": "GET /watch/c HTTP/1.1\r\nX-Empty:\r\n\r\n",
    "bad_method": "G@T /watch/c HTTP/1.1\r\n\r\n",
    "bad_version": "GET /watch/c HTTP/2.0\r\n\r\n",
    "lower_case_method": "get /watch/c HTTP/1.1\r\n\r\n",
    "garbage": "\x16\x03\x01\x00\xa5\x01\x00\x00",
    "empty": "",
    "leading_newlines": "\r\n\r\nGET /watch/c HTTP/1.1\r\n\r\n",
    "dot_segments": "GET /watch/../stream/a/b HTTP/1.1\r\n\r\n",
    "percent_path": "GET /watch/%ff%fe HTTP/1.1\r\n\r\n",
}
for name, text in heads.items():
    write("http_head", name, text.encode("latin-1"))
write("http_head", "many_headers", ("GET /watch/c HTTP/1.1\r\n" + "".join(f"X-{i}: {i}\r\n" for i in range(33)) + "\r\n").encode())
write("http_head", "header_value_bytes", b"GET /watch/c HTTP/1.1\r\nX: \xff\x80\r\n\r\n")

# The Python-style JSON writer: JSON documents, text, and floats by their bytes.
documents = {
    "object": '{"a": [1, 2], "b": null}',
    "nested": '{"zeta": 1, "alpha": {"b": 1e16, "a": 0.5}}',
    "unicode": '"\\u00e9\\ud83d\\ude00\\u2028"',
    "controls": '"a\\u0001\\n\\r\\t\\b\\f\\u007f\\u001f\\"\\\\/"',
    "floats": "[0.0, -0.0, 1.5, 100.0, 0.1, 0.0001, 1e-05, 1.5e-05, 123456.789, 1e16, 1e15, 9999999999999998.0, 1e100, 1e-100]",
    "float_limits": "[5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]",
    "long_digits": "[0.30000000000000004, 0.1234567890123456789, 1.2345678901234567e+19]",
    "ints": "[0, -1, 18446744073709551615, -9223372036854775808, 9223372036854775807]",
    "int_overflow": "[18446744073709551616, -9223372036854775809]",
    "exponent_ints": "[1e2, 1E+2, 12e-1]",
    "empty_containers": '[[], {}, "", [{}]]',
    "deep": "[" * 100 + "]" * 100,
    "repeated_key": '{"a": 1, "a": 2}',
    "key_order": '{"b": 1, "a": 2, "c": {"z": 1, "y": 2}}',
    "bools": "[true, false, null]",
    "bare_text": "it's a \"test\"\\",
    "quotes": "both ' and \"",
    "single_quote": "it's",
    "nonascii_text": "h\u00e9llo \u2603 \U0001f600",
}
for name, text in documents.items():
    write("python_json", name, text)
write("python_json", "invalid_utf8", b"\xff\xfe\xe2\x82 a")
write("python_json", "nul", b"a\x00b")
for name, value in [("float_third", 1 / 3), ("float_tiny", 5e-324), ("float_e16", 1e16), ("float_neg", -2.5e-7)]:
    write("python_json", name, struct.pack("<d", value))

# The access checks: a glob and a channel id on either side of a newline; header,
# cookie and query text; JSON objects, which are also signed as a token's claims.
FUZZ_SECRET = b"the fuzzing secret"  # eric_socket::fuzzing's


def hs256(claims):
    def part(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(FUZZ_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


IN_2100 = 4102444800
access = {
    "glob_prefix": "news.*\nnews.sport.uk",
    "glob_not_prefix": "news.*\nnewsroom",
    "glob_every": "*\n",
    "glob_stars": "a*b**c\naXbYbc",
    "glob_unicode": "\u00e9t\u00e9.*\n\u00e9t\u00e9.x",
    "bearer_malformed": "Bearer abc.def.ghi",
    "bearer_empty": "bearer   ",
    "basic": "Basic dXNlcjpwYXNz",
    "cookie": "theme=dark; eric_token=abc.def.ghi",
    "cookie_quoted": 'eric_token="abc"; eric_token=x',
    "query": "channel=c&access_token=abc.def.ghi",
    "query_empty": "access_token=&access_token=x",
    "bearer_valid": "Bearer " + hs256({"exp": IN_2100, "eric": {"subscribe": ["news.*"]}}),
    "cookie_valid": "eric_token=" + hs256({"exp": IN_2100, "eric": {"admin": True}}),
    "query_valid": "access_token=" + hs256({"exp": IN_2100}),
    "bearer_expired": "Bearer " + hs256({"exp": 1}),
    "claims_grants": '{"exp": 4102444800, "eric": {"publish": ["a"], "subscribe": ["news.*", "*"], "admin": false}}',
    "claims_bare": '{"exp": 4102444800}',
    "claims_expired": '{"exp": 1, "eric": {"admin": true}}',
    "claims_no_exp": '{"eric": {"admin": true}}',
    "claims_exp_text": '{"exp": "4102444800"}',
    "claims_exp_float": '{"exp": 4102444800.5}',
    "claims_exp_huge": '{"exp": 18446744073709551615}',
    "claims_exp_over": '{"exp": 18446744073709551616}',
    "claims_exp_negative": '{"exp": -1}',
    "claims_nbf_future": '{"exp": 4102444800, "nbf": 4102444000}',
    "claims_nbf_past": '{"exp": 4102444800, "nbf": 1}',
    "claims_nbf_text": '{"exp": 4102444800, "nbf": "1"}',
    "claims_unknown_grant": '{"exp": 4102444800, "eric": {"publsh": ["a"]}}',
    "claims_grants_null": '{"exp": 4102444800, "eric": null}',
    "claims_grants_wrong_type": '{"exp": 4102444800, "eric": {"publish": "a"}}',
    "claims_registered": '{"exp": 4102444800, "iss": 5, "aud": ["x"], "sub": null, "iat": "x"}',
}
for name, text in access.items():
    write("access", name, text)
write("access", "header_bytes", b"Bearer \xff\xfe")

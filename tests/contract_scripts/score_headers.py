"""run() that declares request_headers: the server passes the request's headers to it."""


def init():
    pass


def run(data, request_headers):
    return {
        "data": data,
        "custom": request_headers.get("X-Custom-Header"),
        "repeated": request_headers.get("X-Repeat"),
        "content_type": request_headers.get("Content-Type"),
        "missing": request_headers.get("X-Not-Sent", "absent"),
    }

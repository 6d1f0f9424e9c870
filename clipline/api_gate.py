"""What a request must show before its body is read: credentials, then a body within the limit.

An ASGI middleware in front of the whole app (the JSON API and the web page):

- With ``CLIPLINE_API_TOKEN`` set, a request that may carry a body (anything but GET, HEAD and
  OPTIONS) needs a valid bearer header or login cookie before one byte of its body is read: the
  JSON API answers 401 in its error shape, the page's forms (``/ui/...``) go to the login page.
  Only ``/login`` and ``/logout`` take a body from anyone (the login form holds the token). The
  routes still check what each credential may do (a login cookie never writes through the JSON API).
- The body may not exceed ``CLIPLINE_API_MAX_BODY_BYTES``: a declared ``Content-Length`` over it is
  refused at once; a body without one (``Transfer-Encoding: chunked``) is counted as it streams and
  refused when it passes the limit, whatever the route was doing with it. Both are 413 in the API's
  error shape (the page's own 413 page under ``/ui/``). The submit form's POST may hold its text
  field and a file each up to the limit, plus the form's overhead (the route checks the request).

Every refusal closes the connection (``Connection: close``): the unread rest of the body is never read.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api_errors import ErrorCode, error_response
from .web import session
from .web.render import error_page, is_page

#: Methods whose requests carry no body worth reading: their routes check credentials themselves.
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths that take a body from anyone: the login form (it holds the token) and logout (CSRF-checked).
_OPEN_WRITES = frozenset({"/login", "/logout"})
_CLOSE = {"Connection": "close"}
#: What the submit form's multipart body may hold beyond its two fields: boundaries, headers, csrf.
_FORM_OVERHEAD = 64 * 1024


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes the limit; answered with 413."""


class RequestGate:
    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app, self.token, self.max_body_bytes = app, token, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._limited(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        """The answer to give before reading the body, or None to go on."""
        if self.token and request.method not in _BODILESS and request.url.path not in _OPEN_WRITES:
            state = session.access(request, self.token)
            if state not in (session.Access.OPEN, session.Access.GRANTED):
                return _unauthorised(request, state)
        declared = request.headers.get("content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit())):
            return error_response(ErrorCode.REQUEST_INVALID, "Content-Length is not a number", headers=_CLOSE)
        if declared is not None and int(declared) > self._limit(request):
            return self._too_large(request)
        return None

    def _limit(self, request: Request) -> int:
        """The body limit: the API's, except for the submit form's multipart POST, which carries the text
        field and a file each up to the limit (submit.py refuses a request over it with the page's own
        message, the text kept) plus the form's boundaries and fields."""
        if request.url.path == "/ui/submit" and request.method == "POST":
            return 2 * self.max_body_bytes + _FORM_OVERHEAD
        return self.max_body_bytes

    def _too_large(self, request: Request) -> Response:
        limit = self._limit(request)
        if is_page(request):  # the page's form: the page's own answer, in its language
            response = error_page(request, 413, "toobig", n=str(self.max_body_bytes))
            response.headers.update(_CLOSE)
            return response
        return error_response(ErrorCode.BODY_TOO_LARGE, f"body over {limit} bytes", headers=_CLOSE)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that counts the body; past the limit the answer is 413, even
        when the app caught the error and answered something else."""
        received, over, started = 0, False, False
        request = Request(scope)
        limit = self._limit(request)

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(f"body over {limit} bytes")
            return message

        async def sent(message: Message) -> None:
            nonlocal started
            if over:  # whatever the app makes of the error, the caller learns the body was too large
                if not started and message["type"] == "http.response.start":
                    started = True
                    await self._too_large(request)(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sent)
        except BodyTooLarge:
            if started:
                raise
            started = True
            await self._too_large(request)(scope, receive, send)


def _unauthorised(request: Request, state: session.Access) -> Response:
    if request.url.path.startswith("/ui/"):  # a form of the page: log in (again), then come back
        return RedirectResponse(
            session.login_location(session.come_back_to(request), state), status_code=303, headers=_CLOSE
        )
    headers = {"WWW-Authenticate": "Bearer", **_CLOSE}
    return error_response(ErrorCode.UNAUTHORIZED, "missing or wrong bearer token", headers=headers)

"""The evaluator web page: one static HTML page, its script and its style, served from `static/`.

No build step and nothing from the network: the page calls the evaluation API with the evaluator's key
(typed once into its key field, or passed as `/evaluate#key=...`, a fragment the browser never sends, so no
access log records it; it is kept in sessionStorage, and a key in the address is removed from it at
once). The content security policy allows only this origin's script and style, so model text can never
run as code.
"""

from pathlib import Path

from litestar import Response, Router, get
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router

from recursum.service.api.auth import PUBLIC

STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",  # nothing of the address leaves in a Referer header
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@get("/evaluate", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False, opt=PUBLIC)
def evaluate_page() -> Response[bytes]:
    """The page for judging comparison tasks by hand."""
    return Response((STATIC / "evaluate.html").read_bytes(), media_type=MediaType.HTML,
                    headers=SECURITY_HEADERS)


def evaluate_static() -> Router:
    """The page's script and style under /evaluate/static/."""
    return create_static_files_router(path="/evaluate/static", directories=[STATIC], name="evaluate-static",
                                      include_in_schema=False, opt=PUBLIC)

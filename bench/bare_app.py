"""The ceiling of the server stack: Starlette on uvicorn answering 202 and doing nothing else."""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    await request.body()
    return JSONResponse({"accepted": 1}, 202)


ANSWERED = {"requests": 0}
OK = b'{"code":0,"message":"OK","request_id":"BENCH","data":{}}'


async def tiktok_ok(request: Request) -> Response:
    """A TikTok that accepts everything at once without parsing it (every Events API path),
    so ingest benchmarks measure ingest and delivery ones measure the client."""
    await request.body()
    ANSWERED["requests"] += 1
    return Response(OK, media_type="application/json")


async def answered(request: Request) -> Response:
    return JSONResponse(ANSWERED)


app = Starlette(routes=[Route("/v1/events", accept, methods=["POST"]),
                        Route("/open_api/{path:path}", tiktok_ok, methods=["POST"]),
                        Route("/answered", answered), Route("/", accept, methods=["GET"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)

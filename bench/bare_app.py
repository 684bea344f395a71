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


async def tiktok_ok(request: Request) -> Response:
    """A TikTok that accepts everything at once, so ingest benchmarks measure ingest."""
    await request.body()
    return JSONResponse({"code": 0, "message": "OK", "request_id": "BENCH", "data": {}})


app = Starlette(routes=[Route("/v1/events", accept, methods=["POST"]),
                        Route("/open_api/v1.3/event/track/", tiktok_ok, methods=["POST"]),
                        Route("/", accept, methods=["GET"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)

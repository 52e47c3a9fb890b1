"""`assistant serve`: the Gradio app and the OpenAI-compatible API on one port (the same
as `python app.py`); once the model is loaded it prints both URLs, the API's base URL
(http://HOST:PORT/v1) being what an OpenAI client takes as ``base_url``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="start the web app (chat, compare, knowledge, adapters, metrics) and the "
        "OpenAI-compatible API at /v1",
        description="Serve the Gradio app and, on the same port, the OpenAI-compatible API "
        "(GET /v1/models, POST /v1/chat/completions; prints its base URL when ready). Loads "
        "the model once and ingests the demo documents when the knowledge base is empty. "
        "Access settings: ASSISTANT_AUTH, ASSISTANT_ADMINS, ASSISTANT_PRIVATE_UPLOADS, "
        "ASSISTANT_API_KEYS (bearer keys for /v1; unset: the web logins, else open).",
    )
    serve.add_argument("--host", default=None,
                       help="interface to listen on ($GRADIO_SERVER_NAME, else 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None,
                       help="port ($PORT, else $GRADIO_SERVER_PORT, else 7860)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from assistant.server import serve
    from assistant.settings import get_settings

    serve(get_settings(), host=args.host, port=args.port)
    return 0

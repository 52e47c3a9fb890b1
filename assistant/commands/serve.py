"""`assistant serve`: the Gradio app (the same as `python app.py`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="start the web app (chat, compare, knowledge, adapters, metrics)",
        description="Serve the Gradio app. Loads the model once and ingests the demo "
        "documents when the knowledge base is empty. Access settings: ASSISTANT_AUTH, "
        "ASSISTANT_ADMINS, ASSISTANT_PRIVATE_UPLOADS.",
    )
    serve.add_argument("--host", default=None,
                       help="interface to listen on ($GRADIO_SERVER_NAME, else 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None,
                       help="port ($PORT, else $GRADIO_SERVER_PORT, else 7860)")
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from assistant.settings import get_settings
    from assistant.ui.app import serve

    serve(get_settings(), host=args.host, port=args.port)
    return 0

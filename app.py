"""Strata's web app: `python app.py` (the same as `assistant serve`; HuggingFace Spaces runs this).

Settings come from ASSISTANT_* variables; the port from $PORT or $GRADIO_SERVER_PORT (7860).
"""

from assistant.cli import quiet_libraries, setup_logging
from assistant.server import serve
from assistant.settings import get_settings

if __name__ == "__main__":
    setup_logging(verbose=False)
    quiet_libraries()
    serve(settings=get_settings())

"""Training an adapter from the browser: a placeholder inside the Adapters tab.

=== TRAINING UI: TO BE FILLED IN BY THE TRAINING WORK ===================================
``build(ctx)`` is called inside the "Train a new adapter" accordion of the Adapters tab.
What it should do, in the app's conventions:
- gate every action with ``ctx.access.require_write(ctx.visitor(request), "train adapters")``
  (turn the StrataError into ``gr.Error``), so only admins train when ``admins`` is set;
- call the training service (assistant/training.py) and nothing else: no logic here;
- report progress with ``gr.Progress`` and give the finished adapter's card;
- new adapters show up in the Chat/Compare dropdowns and the Adapters table by themselves
  (they are re-read from disk), so nothing else needs to change.
Until then the CLI trains: ``assistant train --name N --data FILE``.
==========================================================================================
"""

from __future__ import annotations

import gradio as gr

from assistant.ui.common import Context


def build(ctx: Context) -> None:
    gr.Markdown(
        "Training from the browser is not available yet. Train on the command line with "
        "`assistant train --name NAME --data FILE.jsonl`; the new adapter appears in this tab "
        "and in the Chat and Compare adapter lists without a restart."
    )

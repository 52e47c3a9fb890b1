"""Strata's OpenAI-compatible endpoint (``/v1`` on the web app's port), so that any tool
that speaks the OpenAI API (the official SDK, LangChain, Open WebUI) can ask Strata, with
every answer going through the same Pipeline and leaving the same ledger row as the web
app's. ``assistant.api.app.create_api`` builds it over the services it is given;
``assistant.server`` puts it beside the Gradio app in one ASGI app and serves both.
"""

"""Fakes shared by the unit tests: small stand-ins that keep a component's contract."""

from __future__ import annotations

from assistant.models.generation import Generation, Timings, Usage


class FakeStream:
    """A generator stream that 'generates' a fixed text (the pipeline's contract only)."""

    def __init__(self, text):
        self.text, self.result = text, None

    def __iter__(self):
        yield self.text
        self.result = Generation(self.text, Usage(prompt_tokens=50, completion_tokens=9),
                                 Timings(), finish_reason="stop")

    def close(self):
        pass

    def wait(self):
        for _ in self:
            pass
        return self.result

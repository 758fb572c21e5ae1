#!/usr/bin/env python3
"""The official `openai` Python client against `phasebench serve`.

Usage: openai-client-check.py BASE_URL MODEL   (BASE_URL such as http://127.0.0.1:8000/v1)

Streams a completion and a chat completion and asks for one whole
completion, checking the shapes the client parses and the token counts.
Run by tests/serve.rs; exits non-zero on the first mismatch.
"""

import sys

from openai import OpenAI


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)

    assert [m.id for m in client.models.list().data] == [model]

    # A whole completion: byte-level preset tokens are BOS plus one per byte.
    whole = client.completions.create(model=model, prompt="hello", max_tokens=7, temperature=0)
    assert whole.usage.prompt_tokens == 6, whole.usage
    assert whole.usage.completion_tokens == 7, whole.usage
    assert whole.usage.total_tokens == 13, whole.usage
    assert whole.choices[0].finish_reason == "length", whole.choices[0]

    # The same completion streamed: one chunk per token, then the usage chunk.
    chunks = list(
        client.completions.create(
            model=model,
            prompt="hello",
            max_tokens=7,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    tokens = [c for c in chunks if c.choices]
    assert len(tokens) == 7, chunks
    assert tokens[-1].choices[0].finish_reason == "length", tokens[-1]
    assert "".join(c.choices[0].text for c in tokens) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 7 and chunks[-1].usage.prompt_tokens == 6, chunks[-1]

    # A streamed chat: the role chunk, one chunk per token, the usage chunk.
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    content = [c for c in chunks[1:] if c.choices and c.choices[0].delta.content is not None]
    assert len(content) == 5, chunks
    assert content[-1].choices[0].finish_reason == "length", content[-1]
    usage = chunks[-1].usage
    # "user: hi\nassistant: " is 20 bytes, plus BOS.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (21, 5, 26), usage

    # A wrong model is the OpenAI NotFoundError.
    try:
        client.completions.create(model="not-" + model, prompt="x", max_tokens=1)
        raise AssertionError("a wrong model was served")
    except Exception as error:  # noqa: BLE001 - the class is the check
        assert type(error).__name__ == "NotFoundError", repr(error)

    print("openai client: ok")


if __name__ == "__main__":
    main()

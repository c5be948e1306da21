"""LLM-driven data creation: the stage before ``data`` in the flow, Okapi's four steps and TaCo.

``llm`` (client, cache, retries) and ``llm_types`` (requests, answers, errors, usage); the backends
that answer a request (``backends``: OpenAI-compatible HTTP in ``openai_backend``, in-process models
in ``local_backends``); the resumable row runner (``runner``, over the files of ``rowfiles``); the
steps ``generate``, ``translate``, ``respond``, ``rank`` and ``taco``, each a per-row function;
``steps``, the steps as functions over files (what ``okapi-hf data <step>`` calls); ``prompts``,
the prompt files; ``fake_llm``, an OpenAI-compatible test server.
"""

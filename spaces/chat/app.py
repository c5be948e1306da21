"""Okapi chat Space: the app lives in ``okapi_hf.spaces.chat``; this file only starts it.

The model comes from OKAPI_CHAT_MODEL (a model folder or a Hub id), never from the visitor; optional
OKAPI_CHAT_MAX_INPUT_CHARS, OKAPI_CHAT_CONCURRENCY, OKAPI_CHAT_GPU=1, OKAPI_CHAT_MAX_HISTORY (newest
history messages read) and OKAPI_CHAT_MAX_SECONDS (longest a reply may take). Host and port come from
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT as usual. Locally:

    OKAPI_CHAT_MODEL=path/to/model python spaces/chat/app.py
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from okapi_hf.spaces.chat import demo_from_env  # after the environment is set

demo = demo_from_env()

if __name__ == "__main__":
    demo.launch()

"""Okapi leaderboard Space: the app lives in ``okapi_hf.spaces.leaderboard``; this file only starts it.

Data paths come from OKAPI_LEADERBOARD_SEED (a CSV) and OKAPI_LEADERBOARD_RESULTS (folders written by
``okapi-hf eval run``); host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT as usual.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from okapi_hf.spaces.leaderboard import demo_from_env  # after the environment is set

demo = demo_from_env()

if __name__ == "__main__":
    demo.launch()

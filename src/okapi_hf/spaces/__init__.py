"""The Gradio apps behind ``spaces/``: each Space's ``app.py`` only reads its configuration and launches one."""

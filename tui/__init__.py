"""reasonlab's terminal app. It reads and writes runs only through `engine.core.store` and starts
runs as engine subprocesses, so it never imports torch or transformers."""

"""reasonlab's terminal app. It reads and writes runs only through `engine.store` and starts
runs as engine subprocesses, so it never imports torch or transformers."""

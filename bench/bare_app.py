"""The baseline for bench/receiver: a Flask app that does nothing but answer 204."""

from flask import Flask

app = Flask("bare")


@app.post("/webhooks/rivya")
def receive() -> tuple[str, int]:
    """Answer like the receiver would, without verifying or storing anything."""
    return "", 204

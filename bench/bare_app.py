"""The yardstick: a bare Flask endpoint returning a constant JSON body."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/constant")
@app.get("/constant")
def constant():
    return jsonify(status="ok", amount=203000)
